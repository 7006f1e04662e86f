# Turns a text file into a C++ source defining `extern const char NAME[]`, so the
# web page is part of the binary (no files to install, nothing fetched).
# Usage: cmake -DINPUT=... -DOUTPUT=... -DNAME=... -P embed_file.cmake
file(READ "${INPUT}" content)
string(FIND "${content}" ")gr_embed\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter )gr_embed\"")
endif()
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} by embed_file.cmake; do not edit.\nnamespace gemmarun::server {\nextern const char ${NAME}[];\nconst char ${NAME}[] = R\"gr_embed(${content})gr_embed\";\n}  // namespace gemmarun::server\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
