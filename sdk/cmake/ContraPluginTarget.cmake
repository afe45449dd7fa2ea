# The rules every contra plugin library follows, in-tree and out-of-tree.
# Installed with the SDK (lib/cmake/contra/); included by ContraPlugin.cmake
# (in-tree) and ContraAddPlugin.cmake (find_package(contra)).
#
# contra_plugin_target_properties(target OUTPUT_NAME name)
#   target: a MODULE library holding exactly one CONTRA_PLUGIN_LIBRARY(...).
#   - hidden visibility: the library exports only its manifest symbol
#     (CONTRA_PLUGIN_LIBRARY marks it visible), so two plugins never clash;
#   - linked with --no-undefined: a missing symbol fails the build, not the run
#     (a lazily bound missing symbol would kill the process on its first call);
#   - file name lib<OUTPUT_NAME>.so: the runtime loads every *.so in a plugin
#     folder, whatever its name.
include_guard(GLOBAL)

function(contra_plugin_target_properties target)
  cmake_parse_arguments(ARG "" "OUTPUT_NAME" "" ${ARGN})
  if(NOT ARG_OUTPUT_NAME)
    set(ARG_OUTPUT_NAME ${target})
  endif()
  target_link_options(${target} PRIVATE LINKER:--no-undefined)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${ARG_OUTPUT_NAME}
    PREFIX "lib"
    SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
endfunction()

# contra_plugin_output_name(out name [KIND kind]): contra_<kind>_<name> with a
# kind (the in-tree convention, libcontra_loss_info_nce.so), <name> without.
function(contra_plugin_output_name out name)
  cmake_parse_arguments(ARG "" "KIND" "" ${ARGN})
  if(ARG_KIND)
    set(kinds source augmentation sampler encoder miner loss optimizer memory evaluator tokenizer text_augmentation)
    if(NOT ARG_KIND IN_LIST kinds)
      message(FATAL_ERROR "contra plugin ${name}: unknown KIND '${ARG_KIND}' (one of: ${kinds})")
    endif()
    set(${out} contra_${ARG_KIND}_${name} PARENT_SCOPE)
  else()
    set(${out} ${name} PARENT_SCOPE)
  endif()
endfunction()
