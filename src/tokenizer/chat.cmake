# Chat encoding and output parsing (dsv4::chat). Included from src/tokenizer/CMakeLists.txt.
# Independent of the tokenizer: links dsv4_core and nlohmann_json only.
add_library(dsv4_chat
  ${CMAKE_CURRENT_LIST_DIR}/chat_json.cpp
  ${CMAKE_CURRENT_LIST_DIR}/chat_encoding.cpp
  ${CMAKE_CURRENT_LIST_DIR}/chat_openai.cpp
  ${CMAKE_CURRENT_LIST_DIR}/parse_output.cpp)
target_include_directories(dsv4_chat PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(dsv4_chat PUBLIC dsv4_core nlohmann_json::nlohmann_json)

if(DSV4_BUILD_TESTS)
  dsv4_add_test(chat_tests
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/tests/chat_json_test.cpp
            ${CMAKE_CURRENT_LIST_DIR}/tests/chat_encoding_test.cpp
            ${CMAKE_CURRENT_LIST_DIR}/tests/chat_openai_test.cpp
            ${CMAKE_CURRENT_LIST_DIR}/tests/parse_output_test.cpp
    LIBS dsv4_chat)
endif()
