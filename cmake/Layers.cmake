# The layers of docs/architecture.md ("Layers"), enforced by the build.
#
# Include roots: no target has the project root on its include path. Each
# library exports an include root of its own, ${RMIG_INCLUDE_ROOT}/<target>,
# holding only a symlink to its folder (include/rmig_transport/transport ->
# <source>/transport), PUBLIC. So `#include "folder/file.hpp"` compiles only
# in a target that links the library owning `folder`, directly or through a
# PUBLIC link: an upward include fails to compile, e.g.
#   transport/transport.cpp:2:10: fatal error: security/context.hpp: No such file or directory
#
# Link order: rmig_layer() records each target's layer, and
# rmig_check_layers() (the last line of the top-level CMakeLists.txt) refuses
# to configure a target that links a library of a higher layer, or of its own
# layer from another folder, so target_link_libraries cannot bring back what
# the include roots keep out (a cycle between static libraries links, hidden
# by link order). Tests, bench/ and tests/fuzz sit above every layer and are
# not checked: they link the libraries they exercise.

set(RMIG_INCLUDE_ROOT ${PROJECT_BINARY_DIR}/include)

# Bottom to top. A target may link libraries of lower layers, and libraries of
# its own layer in its own folder (transport -> dpdk/protocol, rmig -> cli support).
#   common     common/
#   base       wire/ (the wire protocol), numa/, engine/dirty, engine/pages,
#              engine/convergence, guest/: each builds on common/ only
#   transport  transport/ (tcp/, rdma/, dpdk/): channels that speak wire/
#   security   security/: composed above transport/ (security::listen/connect)
#   engine     engine/memory: memory mode
#   modes      engine/capi (C API over memory mode), qemu-plugin/ (channel mode)
#   apps       cli/, lab/, lab/synth/
set(RMIG_LAYERS common base transport security engine modes apps)

# Known exceptions, "<target>-><library>", each with a comment saying when it
# goes. None today (rmig-lab's use of cli/args.hpp went when Args moved to common/).
set(RMIG_LAYER_EXCEPTIONS "")

# rmig_include_root(<target> <folder>...): ${RMIG_INCLUDE_ROOT}/<target> with a
# symlink per folder (relative to the source root), added to <target>'s
# PUBLIC (INTERFACE for an interface library) include directories.
function(rmig_include_root target)
  set(root ${RMIG_INCLUDE_ROOT}/${target})
  foreach(folder ${ARGN})
    set(link ${root}/${folder})
    set(dest ${PROJECT_SOURCE_DIR}/${folder})
    if(NOT IS_DIRECTORY ${dest})
      message(FATAL_ERROR "rmig_include_root(${target}): no folder ${dest}")
    endif()
    if(IS_SYMLINK ${link})
      file(READ_SYMLINK ${link} current)
      if(current STREQUAL dest)
        continue()
      endif()
      file(REMOVE ${link})
    endif()
    get_filename_component(parent ${link} DIRECTORY)
    file(MAKE_DIRECTORY ${parent})
    file(CREATE_LINK ${dest} ${link} SYMBOLIC)
  endforeach()
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "INTERFACE_LIBRARY")
    target_include_directories(${target} INTERFACE ${root})
  else()
    target_include_directories(${target} PUBLIC ${root})
  endif()
endfunction()

# rmig_layer(<target> <layer> [EXPORTS <folder>...]): records <target>'s layer
# and folder (the current source folder); a library also gets its include root
# exposing EXPORTS (default: its folder).
function(rmig_layer target layer)
  cmake_parse_arguments(L "" "" "EXPORTS" ${ARGN})
  list(FIND RMIG_LAYERS ${layer} index)
  if(index LESS 0)
    message(FATAL_ERROR "rmig_layer(${target}): unknown layer '${layer}' (one of ${RMIG_LAYERS})")
  endif()
  file(RELATIVE_PATH folder ${PROJECT_SOURCE_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  set_target_properties(${target} PROPERTIES RMIG_LAYER ${index} RMIG_FOLDER ${folder})
  set_property(GLOBAL APPEND PROPERTY RMIG_LAYERED_TARGETS ${target})
  get_target_property(type ${target} TYPE)
  if(NOT type STREQUAL "EXECUTABLE")
    if(NOT L_EXPORTS)
      set(L_EXPORTS ${folder})
    endif()
    rmig_include_root(${target} ${L_EXPORTS})
  endif()
endfunction()

# Fails the configure step on a link that runs up the layers.
function(rmig_check_layers)
  get_property(targets GLOBAL PROPERTY RMIG_LAYERED_TARGETS)
  foreach(t ${targets})
    get_target_property(t_layer ${t} RMIG_LAYER)
    get_target_property(t_folder ${t} RMIG_FOLDER)
    get_target_property(links ${t} LINK_LIBRARIES)
    if(NOT links)
      continue()
    endif()
    foreach(d ${links})
      if(NOT TARGET ${d})
        continue()
      endif()
      get_target_property(d_layer ${d} RMIG_LAYER)
      if(NOT d_layer AND NOT d_layer STREQUAL "0")
        continue()  # not one of ours (threads, json, OpenSSL, ...)
      endif()
      get_target_property(d_folder ${d} RMIG_FOLDER)
      if(d_layer LESS t_layer OR (d_layer EQUAL t_layer AND d_folder STREQUAL t_folder))
        continue()
      endif()
      if("${t}->${d}" IN_LIST RMIG_LAYER_EXCEPTIONS)
        continue()
      endif()
      list(GET RMIG_LAYERS ${t_layer} t_name)
      list(GET RMIG_LAYERS ${d_layer} d_name)
      message(FATAL_ERROR "layer violation: ${t} (${t_folder}, layer ${t_name}) links ${d} "
                          "(${d_folder}, layer ${d_name}); see docs/architecture.md, Layers")
    endforeach()
  endforeach()
endfunction()
