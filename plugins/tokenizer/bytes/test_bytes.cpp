#include "bytes.hpp"

#include <test_support.hpp>

#include <string>
#include <vector>

using contra::plugins::BytesTokenizer;

namespace {

BytesTokenizer make() { return BytesTokenizer(BytesTokenizer::schema().bind({})); }

std::vector<std::int32_t> encode(const BytesTokenizer& t, std::string_view text) {
  std::vector<std::int32_t> ids{99, 98};  // encode() must clear what was there
  t.encode(text, ids);
  return ids;
}

}  // namespace

TEST_CASE("bytes: schema is well formed, vocabulary of 260 with pad 0, bos 1, eos 2, unk 3", "[plugins][bytes]") {
  CHECK_NOTHROW(BytesTokenizer::schema().check_well_formed());
  const contra::Vocabulary v = make().vocabulary();
  CHECK(v.size == 260);
  CHECK(v.pad == 0);
  CHECK(v.bos == 1);
  CHECK(v.eos == 2);
  CHECK(v.unk == 3);
}

TEST_CASE("bytes: each byte is one id, byte + 4", "[plugins][bytes]") {
  const auto t = make();
  CHECK(encode(t, "Ab") == std::vector<std::int32_t>{0x41 + 4, 0x62 + 4});
  CHECK(encode(t, "").empty());
  // é is two bytes in UTF-8, € three, 😀 four.
  CHECK(encode(t, "\xc3\xa9") == std::vector<std::int32_t>{0xc3 + 4, 0xa9 + 4});
  CHECK(encode(t, "\xe2\x82\xac").size() == 3);
  CHECK(encode(t, "\xf0\x9f\x98\x80").size() == 4);
}

TEST_CASE("bytes: decode inverts encode for multi-byte UTF-8, invalid UTF-8 and NUL bytes", "[plugins][bytes]") {
  const auto t = make();
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  for (const std::string& s : {std::string("hello, world"), std::string("na\xc3\xafve caf\xc3\xa9 \xe2\x82\xac 5"),
                               std::string("\xf0\x9f\x98\x80 smile"),
                               std::string("\xff\xfe\xc3 broken \x80 utf-8 \xe2\x82"), std::string("a\0b", 3),
                               every_byte}) {
    const auto ids = encode(t, s);
    REQUIRE(ids.size() == s.size());
    for (auto id : ids) CHECK((id >= 4 && id < 260));
    CHECK(t.decode(ids) == s);
  }
}

TEST_CASE("bytes: decode skips special ids and ids outside the vocabulary", "[plugins][bytes]") {
  const auto t = make();
  CHECK(t.decode({1, 'h' + 4, 0, 3, 'i' + 4, 2, 0, -5, 260, 100000}) == "hi");
  CHECK(t.decode({}).empty());
}
