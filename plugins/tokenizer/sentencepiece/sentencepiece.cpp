#include "sentencepiece.hpp"

#include "model_check.hpp"

#include <sentencepiece_processor.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <type_traits>

namespace contra::plugins {

namespace {

// Real models are a few MB (a 250k-piece model is about 5 MB); protobuf
// refuses messages past 2 GiB anyway. A larger file is not a model, and is
// refused before it is read into memory.
constexpr std::int64_t max_model_bytes = std::int64_t(1) << 30;

// encode() hands `out` to SentencePiece as its std::vector<int>.
static_assert(std::is_same_v<int, std::int32_t>, "SentencePiece ids are int");

std::string located(const contra::Params& p, const char* name) {
  std::string where = p.where(name).str();
  return where.empty() ? std::string() : where + ": ";
}

std::string key(const contra::Params& p, const char* name) {
  return p.prefix().empty() ? std::string(name) : p.prefix() + "." + name;
}

/// The whole file, which must be a regular file of at most max_model_bytes.
/// `fail(what)` builds the error to throw.
template <class Fail> std::string read_model_file(const std::string& path, Fail fail) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(std::string("cannot open: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw fail(std::string("cannot read: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw fail("not a regular file; expected a SentencePiece .model file");
  if (st.st_size == 0) throw fail("empty file; expected a SentencePiece .model file");
  if (st.st_size > max_model_bytes)
    throw fail(std::to_string(st.st_size) + " bytes, more than a SentencePiece model holds (at most " +
               std::to_string(max_model_bytes) + ")");
  std::string bytes(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw fail(std::string("cannot read: ") + std::strerror(errno));
    if (n == 0) break;  // the file shrank while we read it
    got += static_cast<std::size_t>(n);
  }
  bytes.resize(got);
  return bytes;
}

/// Why libsentencepiece could not load the serialized model `bytes` into
/// `model`, or "" when it did. It reports most bad models in its status, but
/// some throw out of the builder of its tries (Darts' exception, a
/// std::exception): a piece whose text starts with a NUL byte is an empty
/// key to it.
std::string load_model(sentencepiece::SentencePieceProcessor& model, const std::string& bytes) {
  try {
    const auto status = model.LoadFromSerializedProto(bytes);
    if (status.ok()) return "";
    const std::string message = status.message();
    return message.empty() ? status.ToString() : message;  // never "" for a failure
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace

contra::Schema SentencePieceTokenizer::schema() {
  return contra::Schema("sentencepiece", "a trained SentencePiece model (unigram or BPE), e.g. from spm_train")
      .required<std::string>("model", "SentencePiece .model file (spm_train's --model_prefix + \".model\")");
}

SentencePieceTokenizer::SentencePieceTokenizer(const contra::Params& p)
    : path_(p.path("model")), model_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const std::string prefix = located(p, "model") + key(p, "model") + ": " + path_ + ": ";
  auto fail = [&](const std::string& what) { return contra::ConfigError(prefix + what); };
  if (path_.empty())
    throw contra::ConfigError(located(p, "model") + key(p, "model") +
                              ": expected a SentencePiece .model file, found \"\"");

  const std::string bytes = read_model_file(path_, fail);
  if (const std::string why = load_model(*model_, bytes); !why.empty())
    throw fail("not a SentencePiece model: " + why);
  if (const std::string why = sentencepiece_model::unsafe_reason(bytes); !why.empty())
    throw fail("a damaged SentencePiece model: " + why);

  pieces_ = model_->GetPieceSize();
  const int unk = model_->unk_id();
  if (pieces_ <= 0 || unk < 0 || unk >= pieces_)
    throw fail("the model has " + std::to_string(pieces_) + " pieces and no unknown piece; expected a model "
               "trained by spm_train");

  // The model's own special ids; -1 where it has none. A crafted model may
  // name one piece for two roles: contra needs four distinct ids.
  const int model_ids[3] = {model_->pad_id(), model_->bos_id(), model_->eos_id()};
  const char* role[3] = {"pad", "bos", "eos"};
  std::int32_t* ids[3] = {&vocabulary_.pad, &vocabulary_.bos, &vocabulary_.eos};
  vocabulary_.unk = unk;
  std::int64_t next_free = pieces_;
  for (int r = 0; r < 3; ++r) {
    const int id = model_ids[r];
    if (id >= pieces_)
      throw fail("the model's " + std::string(role[r]) + " id " + std::to_string(id) + " is past its " +
                 std::to_string(pieces_) + " pieces");
    bool shared = id >= 0 && id == unk;
    for (int q = 0; q < r; ++q) shared = shared || (id >= 0 && id == model_ids[q]);
    if (shared)
      throw fail("the model uses id " + std::to_string(id) + " for " + role[r] + " and another special token; "
                 "expected distinct pad, bos, eos and unk ids");
    *ids[r] = id >= 0 ? id : static_cast<std::int32_t>(next_free++);
  }
  vocabulary_.size = next_free;
  if (vocabulary_.size < 5)
    throw fail("the model has " + std::to_string(pieces_) + " pieces, " + std::to_string(vocabulary_.size) +
               " ids with pad, bos and eos; expected at least 5 (a text tower needs a token beside the special ones)");
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

void SentencePieceTokenizer::encode(std::string_view text, std::vector<std::int32_t>& out) const {
  // SentencePiece maps bytes that are not valid UTF-8 to U+FFFD, which is
  // unk; Encode fails only for an unloaded model. Should it fail anyway, the
  // text becomes one unk rather than an exception.
  if (!model_->Encode(text, &out).ok()) out.assign(1, vocabulary_.unk);
}

std::string SentencePieceTokenizer::decode(const std::vector<std::int32_t>& tokens) const {
  const contra::Vocabulary& v = vocabulary_;
  std::vector<int> pieces;
  pieces.reserve(tokens.size());
  for (std::int32_t id : tokens)
    if (id >= 0 && id < pieces_ && id != v.pad && id != v.bos && id != v.eos && id != v.unk) pieces.push_back(id);
  std::string text;
  if (!model_->Decode(pieces, &text).ok()) text.clear();
  return text;
}

}  // namespace contra::plugins
