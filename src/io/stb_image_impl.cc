// stb_image is compiled here, once. Debian's libstb-dev also ships libstb.so, but
// building the decoder in keeps it to the two formats we accept (a smaller attack
// surface for files users hand us) and adds no runtime dependency.
//
// A file of its own so that the sanitizer builds can exempt it from one check:
// hostile progressive JPEGs make stb's Huffman decoder shift its 32-bit bit
// buffer by 32 (stbi__jpeg_huff_decode; found by tests/fuzz/image_fuzzer.cc,
// input in tests/fuzz/regressions/image). On every compiler and CPU we build for
// that yields a garbled bit buffer, i.e. a garbled picture of a corrupt file, and
// the decoder's bounds checks (which ASan still watches) keep it in its buffers.
// Our own code in image.cc stays under every check.
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
