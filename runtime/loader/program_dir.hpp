#pragma once
// Where the loader finds contra's own plugins, relative to a `bin` folder:
// the folder of the program (build/bin/contra, <prefix>/bin/contra) unless a
// host that is not that program (the Python module, loaded by python3) names
// it. (contra's own libraries, opened by the device part, have their own
// setting: device/own_library.hpp.)

#include <filesystem>

namespace contra::runtime {

/// The `bin` folder the runtime's files are found from: what
/// set_program_dir() set, else the running program's folder (empty when
/// the system cannot say).
std::filesystem::path program_dir();

/// Makes `dir` the program's folder for program_dir(); set once, before
/// anything loads plugins (not synchronised).
void set_program_dir(std::filesystem::path dir);

}  // namespace contra::runtime
