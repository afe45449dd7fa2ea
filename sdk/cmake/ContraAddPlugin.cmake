# contra_add_plugin() for plugins built outside contra's source tree, against
# the installed SDK. find_package(contra) includes this file.
#
# contra_add_plugin(name SOURCES a.cpp ...
#                   [KIND kind] [DEVICE cuda] [LIBRARIES lib ...]
#                   [ARCH cpu] [OPENMP]
#                   [OUTPUT_DIRECTORY dir] [INSTALL_DESTINATION dir | NO_INSTALL])
#
# Builds the MODULE library `name` from SOURCES, one of which holds
# CONTRA_PLUGIN_LIBRARY(...). The file is lib<name>.so, or
# libcontra_<kind>_<name>.so with KIND (contra's own convention), written to
# OUTPUT_DIRECTORY (default: <build>/plugins), so that
#     CONTRA_PLUGIN_PATH=<build>/plugins contra run my.toml
# finds it. Hidden visibility, --no-undefined, linked to contra::sdk and
# LIBRARIES.
#
# DEVICE cuda: a GPU build of the plugin (its manifest uses the *_CUDA
# macros); links contra::cuda (contra/cuda.hpp, libcontra_cuda) and appends
# _cuda to the file name. SOURCES may be .cu files (enable_language(CUDA) in
# your project). Fails when contra was installed without CUDA.
#
# ARCH cpu: compiles SOURCES with -march=<cpu> (`native`, `x86-64-v3` for
# AVX2 and FMA, `skylake-avx512`, ...) for the plugin's own loops; without it
# they get the compiler's default, the x86-64 baseline that runs anywhere.
# The library then runs only on CPUs with those extensions: its manifest
# records them (CONTRA_BUILD_ISA) and contra refuses the library elsewhere,
# naming the missing ones, instead of dying of an illegal instruction. Share
# such a build only with machines like the one it targets.
#
# OPENMP: compiles and links with OpenMP (find_package(OpenMP)). A parallel
# region in the plugin runs on the calling thread's team, the libgomp team
# oneDNN uses, which contra sizes with [runtime] compute_threads on the
# thread that runs encoders, losses and optimizers.
#
# SOURCES are also compiled once into the object library `name_objects`: link
# it into a test executable to test the plugin's classes directly, e.g.
#     add_executable(test_x test_x.cpp)
#     target_link_libraries(test_x PRIVATE x_objects Catch2::Catch2WithMain)
#
# `cmake --install` puts the library into INSTALL_DESTINATION (default
# lib/contra/plugins under the install prefix): installed into the prefix
# contra itself was installed to, the plugin is found without any setting.
include_guard(GLOBAL)
include(${CMAKE_CURRENT_LIST_DIR}/ContraPluginTarget.cmake)

function(contra_add_plugin name)
  cmake_parse_arguments(ARG "NO_INSTALL;OPENMP" "KIND;DEVICE;ARCH;OUTPUT_DIRECTORY;INSTALL_DESTINATION"
                        "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "contra_add_plugin(${name}): SOURCES is required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "contra_add_plugin(${name}): unknown arguments: ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TARGET contra::sdk)
    message(FATAL_ERROR "contra_add_plugin(${name}): call find_package(contra) first")
  endif()
  if(ARG_KIND)
    contra_plugin_output_name(output ${name} KIND ${ARG_KIND})
  else()
    contra_plugin_output_name(output ${name})
  endif()
  if(ARG_DEVICE STREQUAL "cuda")
    if(NOT TARGET contra::cuda)
      message(FATAL_ERROR "contra_add_plugin(${name}): DEVICE cuda, but this contra was built without "
                          "CUDA (no contra::cuda)")
    endif()
    set(output ${output}_cuda)
    list(APPEND ARG_LIBRARIES contra::cuda)
  elseif(ARG_DEVICE AND NOT ARG_DEVICE STREQUAL "cpu")
    message(FATAL_ERROR "contra_add_plugin(${name}): DEVICE '${ARG_DEVICE}' is not one of: cpu, cuda")
  endif()
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/plugins)
  endif()

  if(ARG_OPENMP)
    find_package(OpenMP REQUIRED COMPONENTS CXX)
    list(APPEND ARG_LIBRARIES OpenMP::OpenMP_CXX)
  endif()

  add_library(${name}_objects OBJECT ${ARG_SOURCES})
  target_link_libraries(${name}_objects PUBLIC contra::sdk ${ARG_LIBRARIES})
  if(ARG_ARCH)
    target_compile_options(${name}_objects PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-march=${ARG_ARCH}>)
  endif()
  target_include_directories(${name}_objects PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  set_target_properties(${name}_objects PROPERTIES
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON POSITION_INDEPENDENT_CODE ON)

  add_library(${name} MODULE $<TARGET_OBJECTS:${name}_objects>)
  target_link_libraries(${name} PRIVATE contra::sdk ${ARG_LIBRARIES})
  contra_plugin_target_properties(${name} OUTPUT_NAME ${output})
  set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  if(ARG_DEVICE STREQUAL "cuda")
    # The shared CUDA runtime, as libcontra_cuda's: one runtime in the
    # process, whose streams and allocations both sides share.
    set_target_properties(${name}_objects ${name} PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
  endif()
  if(CONTRA_LIBRARY_DIR)
    # Installed plugins find libcontra_sdk where contra was installed.
    set_target_properties(${name} PROPERTIES INSTALL_RPATH "${CONTRA_LIBRARY_DIR}")
  endif()
  if(NOT ARG_NO_INSTALL)
    if(NOT ARG_INSTALL_DESTINATION)
      set(ARG_INSTALL_DESTINATION lib/contra/plugins)
    endif()
    install(TARGETS ${name} LIBRARY DESTINATION ${ARG_INSTALL_DESTINATION})
  endif()
endfunction()
