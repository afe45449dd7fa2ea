# `cmake --install build --prefix P` lays contra out as:
#   P/bin/contra                       the CLI (RPATH $ORIGIN/../lib)
#   P/lib/libcontra_sdk.so[.0.1[.0]]   the SDK library, SONAME libcontra_sdk.so.0.1
#   P/lib/libcontra_cuda.so[...]       the CUDA runtime of *_cuda plugins (CUDA builds only)
#   P/lib/contra/plugins/*.so          the built-in plugins (RPATH $ORIGIN/../..);
#                                      the installed contra looks here by itself
#   P/include/contra/...               the SDK headers
#   P/lib/cmake/contra/                contraConfig.cmake (+ version): contra::sdk,
#                                      contra_add_plugin()
#   P/lib/pkgconfig/contra.pc          for pkg-config users
#   P/share/contra/templates/          what `contra new-plugin` writes (sdk/templates);
#                                      the installed contra looks here by itself
# Included at the end of the top-level CMakeLists.txt, once every plugin is
# known.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CONTRA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/contra)

# The SDK's versions, from the header plugins compile against.
file(STRINGS ${PROJECT_SOURCE_DIR}/sdk/include/contra/version.hpp contra_version_lines
  REGEX "^#define CONTRA_SDK_(ABI_VERSION|VERSION_STRING) ")
string(REGEX MATCH "CONTRA_SDK_ABI_VERSION ([0-9]+)" _ "${contra_version_lines}")
set(CONTRA_SDK_ABI_VERSION ${CMAKE_MATCH_1})
string(REGEX MATCH "CONTRA_SDK_VERSION_STRING \"([0-9.]+)\"" _ "${contra_version_lines}")
if(NOT CMAKE_MATCH_1 STREQUAL PROJECT_VERSION)
  message(FATAL_ERROR "project version ${PROJECT_VERSION} differs from the SDK's (${CMAKE_MATCH_1}, "
                      "sdk/include/contra/version.hpp): change both together")
endif()

# The installed contra looks for its plugins here, relative to its own folder
# (runtime/plugins/registry.cpp, default_plugin_dirs()).
file(RELATIVE_PATH contra_bin_to_plugins /${CMAKE_INSTALL_BINDIR} /${CMAKE_INSTALL_LIBDIR}/contra/plugins)
target_compile_definitions(contra_runtime PRIVATE CONTRA_INSTALL_PLUGIN_DIR_FROM_BIN="${contra_bin_to_plugins}")

# The CLI.
file(RELATIVE_PATH contra_bin_to_lib /${CMAKE_INSTALL_BINDIR} /${CMAKE_INSTALL_LIBDIR})
set_target_properties(contra PROPERTIES INSTALL_RPATH "\$ORIGIN/${contra_bin_to_lib}")
# Where the runtime dlopens libcontra_cuda from (graph/device_runtime.cpp).
target_compile_definitions(contra_runtime PRIVATE CONTRA_LIBRARY_DIR_FROM_BIN="${contra_bin_to_lib}")
install(TARGETS contra RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The templates of `contra new-plugin`, found relative to the installed CLI
# (tools/contra/new_plugin.cpp).
set(CONTRA_INSTALL_TEMPLATEDIR ${CMAKE_INSTALL_DATADIR}/contra/templates)
file(RELATIVE_PATH contra_bin_to_templates /${CMAKE_INSTALL_BINDIR} /${CONTRA_INSTALL_TEMPLATEDIR})
target_compile_definitions(contra PRIVATE CONTRA_INSTALL_TEMPLATE_DIR_FROM_BIN="${contra_bin_to_templates}")
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sdk/templates/ DESTINATION ${CONTRA_INSTALL_TEMPLATEDIR})

# The SDK library and headers, exported as contra::sdk.
install(TARGETS contra_sdk EXPORT contraTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/sdk/include/contra DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(EXPORT contraTargets NAMESPACE contra:: FILE contraTargets.cmake DESTINATION ${CONTRA_INSTALL_CMAKEDIR})
# libcontra_cuda (contra::cuda), when this build has CUDA: its own export set,
# so that the package needs the CUDA toolkit only where it was installed.
if(CONTRA_HAVE_CUDA)
  # Beside libcontra_sdk; the CUDA libraries where the toolkit has them.
  get_filename_component(contra_cudnn_dir "${CUDNN_LIBRARY}" DIRECTORY)
  set_target_properties(contra_cuda PROPERTIES
    INSTALL_RPATH "\$ORIGIN;${CUDAToolkit_LIBRARY_DIR};${contra_cudnn_dir}")
  install(TARGETS contra_cuda EXPORT contraCudaTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT contraCudaTargets NAMESPACE contra:: FILE contraCudaTargets.cmake
    DESTINATION ${CONTRA_INSTALL_CMAKEDIR})
endif()

# The built-in plugins, beside each other in lib/contra/plugins: they find
# libcontra_sdk two folders up.
get_property(contra_plugin_targets GLOBAL PROPERTY CONTRA_PLUGIN_TARGETS)
foreach(t ${contra_plugin_targets})
  set_target_properties(${t} PROPERTIES INSTALL_RPATH "\$ORIGIN/../..")
endforeach()
# The communicator backends, beside libcontra_sdk (found from bin/ as libcontra_cuda is).
foreach(backend contra_comm_mpi contra_comm_nccl)
  if(TARGET ${backend})
    install(TARGETS ${backend} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
endforeach()
install(TARGETS ${contra_plugin_targets} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/contra/plugins)

# The CMake package.
configure_package_config_file(${PROJECT_SOURCE_DIR}/sdk/cmake/contraConfig.cmake.in
  ${PROJECT_BINARY_DIR}/package/contraConfig.cmake
  INSTALL_DESTINATION ${CONTRA_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_LIBDIR CMAKE_INSTALL_INCLUDEDIR)
# 0.x: a minor version may change the ABI, so 0.1 accepts 0.1.* only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/package/contraConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/package/contraConfig.cmake
  ${PROJECT_BINARY_DIR}/package/contraConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/sdk/cmake/ContraPluginTarget.cmake
  ${PROJECT_SOURCE_DIR}/sdk/cmake/ContraAddPlugin.cmake
  DESTINATION ${CONTRA_INSTALL_CMAKEDIR})

# pkg-config, relocatable: the prefix is found from the .pc file's own folder.
file(RELATIVE_PATH contra_pc_to_prefix /${CMAKE_INSTALL_LIBDIR}/pkgconfig /)
string(REGEX REPLACE "/$" "" contra_pc_to_prefix "${contra_pc_to_prefix}")
configure_file(${PROJECT_SOURCE_DIR}/sdk/cmake/contra.pc.in ${PROJECT_BINARY_DIR}/package/contra.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/package/contra.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The guides for plugin authors and the generated plugin reference.
install(FILES ${PROJECT_SOURCE_DIR}/docs/plugin-authoring.md ${PROJECT_SOURCE_DIR}/docs/abi-policy.md
  DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/plugins DESTINATION ${CMAKE_INSTALL_DOCDIR} OPTIONAL)
# Each built-in plugin's README (its conventions: what it normalises, the
# pairs it takes), which `contra plugins --describe` prints after the schema
# (tools/contra/commands.cpp finds them from bin/).
set(CONTRA_INSTALL_PLUGIN_READMEDIR ${CMAKE_INSTALL_DATADIR}/contra/plugins)
file(GLOB contra_plugin_readmes RELATIVE ${PROJECT_SOURCE_DIR}/plugins ${PROJECT_SOURCE_DIR}/plugins/*/*/README.md)
foreach(readme ${contra_plugin_readmes})
  get_filename_component(folder ${readme} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/plugins/${readme} DESTINATION ${CONTRA_INSTALL_PLUGIN_READMEDIR}/${folder})
endforeach()
file(RELATIVE_PATH contra_bin_to_readmes /${CMAKE_INSTALL_BINDIR} /${CONTRA_INSTALL_PLUGIN_READMEDIR})
target_compile_definitions(contra PRIVATE CONTRA_INSTALL_PLUGIN_README_DIR_FROM_BIN="${contra_bin_to_readmes}"
  CONTRA_SOURCE_PLUGIN_DIR="${PROJECT_SOURCE_DIR}/plugins")
