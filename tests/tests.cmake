# Test registration. `ctest --test-dir build` runs:
#   c/<name>        C unit tests of the core (tests/c/test_*.c)
#   spec/<path>     busted specs, run inside the binary through `prisn lua`
#   e2e/<name>      end-to-end specs that drive build/prisn with a temporary PRISN_HOME
#   chaos/<name>    attacks on the real binary (kill -9, full disk, fuzzing, slow
#                   clients, churn): short budgets here, longer with PRISN_CHAOS_LONG=1
#   lint/luacheck   luacheck over every Lua file we own, when luacheck is installed
#   fuzz/<name>     with PRISN_FUZZ: each libFuzzer target over its seed corpus once

set(PRISN_TEST_ENV
  "PRISN_BIN=$<TARGET_FILE:prisn>"
  "PRISN_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
  "PRISN_SANITIZE=$<BOOL:${PRISN_SANITIZE}>")
if(PRISN_SANITIZE)
  # Debian's Lua C modules (busted's term, system, lfs) are not instrumented;
  # leaks inside them are theirs, so only our own leaks would be reported.
  list(APPEND PRISN_TEST_ENV
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
    "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0")
endif()

file(GLOB PRISN_C_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/c/test_*.c)
foreach(src ${PRISN_C_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src} ${CMAKE_SOURCE_DIR}/tests/c/check.c)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/c)
  target_link_libraries(${name} PRIVATE prisn_core ${PRISN_THIRD_PARTY} ${PRISN_LUA_WHOLE} m dl pthread rt)
  string(REPLACE "test_" "" short ${name})
  add_test(NAME c/${short} COMMAND ${name})
  set_tests_properties(c/${short} PROPERTIES ENVIRONMENT "${PRISN_TEST_ENV}")
endforeach()

function(prisn_add_busted_tests dir prefix timeout)
  file(GLOB_RECURSE specs CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/${dir}
    ${CMAKE_SOURCE_DIR}/${dir}/*_spec.lua)
  foreach(spec ${specs})
    string(REGEX REPLACE "_spec\\.lua$" "" name ${spec})
    add_test(NAME ${prefix}/${name}
      COMMAND prisn lua ${CMAKE_SOURCE_DIR}/tests/spec_runner.lua ${CMAKE_SOURCE_DIR}/${dir}/${spec}
      WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(${prefix}/${name} PROPERTIES ENVIRONMENT "${PRISN_TEST_ENV}" TIMEOUT ${timeout})
  endforeach()
endfunction()
prisn_add_busted_tests(spec spec 300)
prisn_add_busted_tests(tests/e2e e2e 300)
# Long runs (PRISN_CHAOS_LONG=1) take 10-15 minutes; each spec bounds its own waits.
prisn_add_busted_tests(tests/chaos chaos 1800)

find_program(LUACHECK luacheck)
if(LUACHECK)
  # Only the folders that hold Lua (git keeps no empty folder).
  set(PRISN_LUA_DIRS "")
  foreach(dir lua runners policies spec tests contrib)
    file(GLOB_RECURSE lua_files ${CMAKE_SOURCE_DIR}/${dir}/*.lua)
    if(lua_files)
      list(APPEND PRISN_LUA_DIRS ${dir})
    endif()
  endforeach()
  add_test(NAME lint/luacheck
    COMMAND ${LUACHECK} --quiet --codes --no-color ${PRISN_LUA_DIRS}
    WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
endif()

# libFuzzer targets: C mechanism files only, instrumented with clang's
# fuzzer, ASan and UBSan. The ctest entry replays the seed corpus (a
# regression check of milliseconds); fuzzing itself is run by hand, see the
# comment at the top of each tests/fuzz/fuzz_*.c.
if(PRISN_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "PRISN_FUZZ needs clang: CC=clang cmake -B build-fuzz -DPRISN_FUZZ=ON")
  endif()
  set(PRISN_FUZZ_FLAGS -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -fno-omit-frame-pointer)
  add_executable(fuzz_http ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_http.c ${CMAKE_SOURCE_DIR}/core/http.c)
  target_include_directories(fuzz_http PRIVATE ${CMAKE_SOURCE_DIR}/core)
  target_compile_options(fuzz_http PRIVATE ${PRISN_FUZZ_FLAGS})
  target_link_options(fuzz_http PRIVATE ${PRISN_FUZZ_FLAGS})
  target_link_libraries(fuzz_http PRIVATE ${HTTP_PARSER_A})
  file(GLOB PRISN_FUZZ_HTTP_SEEDS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/http/*)
  add_test(NAME fuzz/http COMMAND fuzz_http ${PRISN_FUZZ_HTTP_SEEDS})

  add_executable(fuzz_tls ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_tls.c ${CMAKE_SOURCE_DIR}/core/tls.c)
  target_include_directories(fuzz_tls PRIVATE ${CMAKE_SOURCE_DIR}/core)
  target_compile_options(fuzz_tls PRIVATE ${PRISN_FUZZ_FLAGS})
  target_link_options(fuzz_tls PRIVATE ${PRISN_FUZZ_FLAGS})
  target_link_libraries(fuzz_tls PRIVATE ${MBEDTLS_A} ${MBEDX509_A} ${MBEDCRYPTO_A} ${SODIUM_A} pthread)
  file(GLOB PRISN_FUZZ_TLS_SEEDS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/tls/*)
  add_test(NAME fuzz/tls COMMAND fuzz_tls ${PRISN_FUZZ_TLS_SEEDS})
endif()
