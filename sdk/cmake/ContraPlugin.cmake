# contra_add_plugin(NAME KIND kind SOURCES a.cpp ... MANIFEST plugin.cpp
#                   [DEVICE cuda] [LIBRARIES ...] [TESTS test_a.cpp ...] [TEST_LIBRARIES ...])
#
# Builds one plugin library, build/plugins/libcontra_<kind>_<name>.so, from
# SOURCES plus MANIFEST (the file holding CONTRA_PLUGIN_LIBRARY). SOURCES also
# form an object library, contra_<kind>_<name>_obj, that tests link directly.
# Plugins export only their manifest symbol, and are linked with
# --no-undefined so that a missing symbol fails the build, not the run.
# TESTS become the test executable test_<kind>_<name>; TEST_LIBRARIES are
# linked into it too (e.g. other plugins' object libraries for a short
# training run). `cmake --install` puts the library into
# <prefix>/lib/contra/plugins (ContraInstall.cmake).
#
# DEVICE cuda builds the plugin's GPU twin instead: SOURCES may be .cu files,
# everything links libcontra_cuda (contra/cuda.hpp), and the names gain
# _cuda: libcontra_<kind>_<name>_cuda.so, contra_<kind>_<name>_cuda_obj,
# test_<kind>_<name>_cuda (labelled `gpu` for ctest; its [gpu] tests skip
# where no GPU is usable). Without CUDA (CONTRA_HAVE_CUDA off) the call does
# nothing, so a plugin folder lists both builds unconditionally:
#     contra_add_plugin(info_nce KIND loss SOURCES info_nce.cpp MANIFEST plugin.cpp ...)
#     contra_add_plugin(info_nce KIND loss DEVICE cuda SOURCES info_nce_cuda.cu
#                       MANIFEST plugin_cuda.cpp TESTS .../test_info_nce_cuda.cpp
#                       TEST_LIBRARIES contra_loss_info_nce_obj)   # the CPU oracle
#
# The rules shared with out-of-tree plugins (visibility, --no-undefined, file
# name) are in ContraPluginTarget.cmake; the installed package's
# contra_add_plugin() is in ContraAddPlugin.cmake.
include(${CMAKE_CURRENT_LIST_DIR}/ContraPluginTarget.cmake)

function(contra_add_plugin name)
  cmake_parse_arguments(ARG "" "KIND;MANIFEST;DEVICE" "SOURCES;LIBRARIES;TESTS;TEST_LIBRARIES" ${ARGN})
  if(NOT ARG_KIND OR NOT ARG_MANIFEST)
    message(FATAL_ERROR "contra_add_plugin(${name}): KIND and MANIFEST are required")
  endif()
  set(suffix "")
  if(ARG_DEVICE STREQUAL "cuda")
    if(NOT CONTRA_HAVE_CUDA)
      return()
    endif()
    set(suffix _cuda)
    list(APPEND ARG_LIBRARIES contra_cuda)
  elseif(ARG_DEVICE AND NOT ARG_DEVICE STREQUAL "cpu")
    message(FATAL_ERROR "contra_add_plugin(${name}): DEVICE '${ARG_DEVICE}' is not one of: cpu, cuda")
  endif()
  # A plugin folder whose sources are not all there yet (being written) is
  # skipped with a warning rather than breaking the whole configure.
  foreach(src ${ARG_SOURCES} ${ARG_MANIFEST} ${ARG_TESTS})
    if(NOT IS_ABSOLUTE ${src})
      set(src ${CMAKE_CURRENT_SOURCE_DIR}/${src})
    endif()
    if(NOT EXISTS ${src})
      message(WARNING "plugin ${ARG_KIND}/${name} skipped: ${src} does not exist")
      return()
    endif()
  endforeach()
  set(obj contra_${ARG_KIND}_${name}${suffix}_obj)
  add_library(${obj} OBJECT ${ARG_SOURCES})
  target_link_libraries(${obj} PUBLIC contra_sdk ${ARG_LIBRARIES})
  target_include_directories(${obj} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  set_target_properties(${obj} PROPERTIES CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)

  contra_plugin_output_name(lib ${name} KIND ${ARG_KIND})
  set(lib ${lib}${suffix})
  add_library(${lib} MODULE ${ARG_MANIFEST})
  target_link_libraries(${lib} PRIVATE ${obj} contra_sdk ${ARG_LIBRARIES})
  contra_plugin_target_properties(${lib} OUTPUT_NAME ${lib})
  set_target_properties(${lib} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${CONTRA_PLUGIN_OUTPUT_DIRECTORY})
  set_property(GLOBAL APPEND PROPERTY CONTRA_PLUGIN_TARGETS ${lib})
  # tests/CMakeLists.txt turns these into test_<kind>_<name> executables.
  if(ARG_TESTS)
    list(TRANSFORM ARG_TESTS PREPEND ${CMAKE_CURRENT_SOURCE_DIR}/ REGEX "^[^/]")
    set(id ${ARG_KIND}_${name}${suffix})
    set_property(GLOBAL APPEND PROPERTY CONTRA_PLUGIN_TESTS ${id})
    set_property(GLOBAL PROPERTY CONTRA_PLUGIN_TESTS_${id} ${ARG_TESTS})
    set_property(GLOBAL PROPERTY CONTRA_PLUGIN_TEST_LIBRARIES_${id} ${ARG_TEST_LIBRARIES})
    if(suffix)
      set_property(GLOBAL PROPERTY CONTRA_PLUGIN_TEST_LABELS_${id} gpu)
    endif()
  endif()
endfunction()
