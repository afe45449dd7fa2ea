#include "loader/program_dir.hpp"

#include <boost/dll/runtime_symbol_info.hpp>

namespace contra::runtime {

namespace {
std::filesystem::path& chosen() {
  static std::filesystem::path dir;
  return dir;
}
}  // namespace

std::filesystem::path program_dir() {
  if (!chosen().empty()) return chosen();
  std::error_code ec;
  const std::filesystem::path exe = boost::dll::program_location(ec);
  return ec ? std::filesystem::path() : exe.parent_path();
}

void set_program_dir(std::filesystem::path dir) { chosen() = std::move(dir); }

}  // namespace contra::runtime
