# Compiler flags shared by every target.
# The RDMA tests run these binaries inside an emulated CPU, so never build for
# the host CPU: x86-64-v2 (SSE4.2, POPCNT) is the ceiling.
add_compile_options(-march=x86-64-v2 -Wall -Wextra -Wpedantic -Wshadow
                    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
                    -Wconversion -Wno-sign-conversion)
if(RMIG_WERROR)
  add_compile_options(-Werror)
endif()
if(RMIG_FUZZ)
  # Coverage for libFuzzer on every library the targets link, plus ASan+UBSan.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
if(RMIG_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

# rmig_add_test(name SOURCES ... LIBS ... [LABELS ...])
# One gtest executable per concern, registered with ctest.
function(rmig_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} rmig_test_support GTest::gtest GTest::gtest_main)
  if(TARGET rmig_test_pch)
    target_precompile_headers(${name} REUSE_FROM rmig_test_pch)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  if(NOT T_LABELS)
    set(T_LABELS unit)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}")
  if("unit" IN_LIST T_LABELS)
    set_property(GLOBAL APPEND PROPERTY RMIG_UNIT_TESTS ${name})
  endif()
endfunction()

# unit_tests: everything `ctest -L unit` runs (the unit test executables and
# the rmig CLI that man_pages_test and the numa checks run), and nothing
# else: the sanitizer build of CI builds only this (scripts/test.sh).
function(rmig_add_unit_tests_target)
  get_property(units GLOBAL PROPERTY RMIG_UNIT_TESTS)
  add_custom_target(unit_tests DEPENDS ${units} rmig)
endfunction()
