# abseil, nlohmann-json and GoogleTest: from the source trees under ICAE_THIRD_PARTY_DIR when it is
# set (tools/third_party/fetch.sh; what a machine without Debian's packages uses), else from the
# system. Either way the targets are absl::*, nlohmann_json::nlohmann_json and GTest::*.
if(ICAE_THIRD_PARTY_DIR)
  foreach(tree abseil googletest nlohmann_json/include/nlohmann)
    if(NOT EXISTS ${ICAE_THIRD_PARTY_DIR}/${tree})
      message(FATAL_ERROR "ICAE_THIRD_PARTY_DIR=${ICAE_THIRD_PARTY_DIR} has no ${tree}; "
        "run tools/third_party/fetch.sh ${ICAE_THIRD_PARTY_DIR}")
    endif()
  endforeach()
  message(STATUS "abseil, GoogleTest and nlohmann-json from ${ICAE_THIRD_PARTY_DIR}")
  set(ABSL_PROPAGATE_CXX_STD ON CACHE BOOL "" FORCE)
  set(ABSL_ENABLE_INSTALL OFF CACHE BOOL "" FORCE)
  set(BUILD_TESTING OFF CACHE BOOL "" FORCE)
  # Built only as far as the project links them; their warnings are not ours.
  add_subdirectory(${ICAE_THIRD_PARTY_DIR}/abseil ${CMAKE_BINARY_DIR}/third_party/abseil
    EXCLUDE_FROM_ALL SYSTEM)
  add_library(icae_nlohmann_json INTERFACE)
  target_include_directories(icae_nlohmann_json SYSTEM INTERFACE
    ${ICAE_THIRD_PARTY_DIR}/nlohmann_json/include)
  add_library(nlohmann_json::nlohmann_json ALIAS icae_nlohmann_json)
  if(ICAE_BUILD_TESTS)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    add_subdirectory(${ICAE_THIRD_PARTY_DIR}/googletest ${CMAKE_BINARY_DIR}/third_party/googletest
      EXCLUDE_FROM_ALL SYSTEM)
    foreach(t gtest gtest_main gmock gmock_main)
      if(NOT TARGET GTest::${t})
        add_library(GTest::${t} ALIAS ${t})
      endif()
    endforeach()
  endif()
else()
  find_package(absl CONFIG REQUIRED)
  find_package(nlohmann_json CONFIG REQUIRED)
  if(ICAE_BUILD_TESTS)
    find_package(GTest CONFIG REQUIRED)
  endif()
endif()
