// The tokenizer is part of the public API; this header keeps the library's
// internal include path working.
#pragma once

#include "gemmarun/tokenizer.h"
