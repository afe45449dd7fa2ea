#pragma once
// Opens one of contra's own libraries that the runtime reaches by dlopen only
// when a run needs it (libcontra_cuda, a communicator backend).

#include <string>

namespace contra::runtime {

/// `name` (e.g. "libcontra_cuda.so.0") beside the program (build tree:
/// bin/../lib; install: bin/<to libdir>), then wherever the dynamic linker
/// looks; dlopen `flags`; never closed. Null when it cannot be loaded, with
/// `why` the loader's first error.
void* open_own_library(const std::string& name, int flags, std::string& why);

/// A folder searched before the program's own, for a host that is not the
/// contra program (the Python module: its build's or install's lib/). Set
/// once, before any library is opened (not synchronised).
void set_own_library_dir(const std::string& dir);

}  // namespace contra::runtime
