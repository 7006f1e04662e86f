// stb_image is compiled here, once. Debian's libstb-dev also ships libstb.so, but
// building the decoder in keeps it to the two formats we accept (a smaller attack
// surface for files users hand us) and adds no runtime dependency.
//
// A file of its own so that the sanitizer builds can exempt it from UBSan (ASan
// still watches every access): on hostile files stb 2.27 has undefined behaviour
// that is benign on every compiler and CPU we build for, e.g. an empty PNG chunk
// passes a null buffer to memcpy of 0 bytes (stbi__getn; found by the image
// fuzzer, input in tests/fuzz/regressions/image). Its real memory bugs are
// refused before stb sees the file (image.cc: oversized JPEG Huffman tables,
// progressive JPEGs), and our own code stays under every check.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_NO_STDIO  // we read the file ourselves, so errors name it
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image.h>
#pragma GCC diagnostic pop
