// Stand-in for compiler-rt's lib/fuzzer/FuzzerDefs.h, which Jazzer.js's addon
// sources include but which no Debian package ships. It declares only what the
// addon uses, and routes the addon's call to fuzzer::FuzzerDriver through
// FuzzerDriverShim (jazzer-upstream-libfuzzer.cpp), which gives upstream
// libFuzzer the "stop on -2" behaviour of Jazzer's patched libFuzzer.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fuzzer {
typedef int (*UserCallback)(const uint8_t *Data, size_t Size);
int FuzzerDriverShim(int *argc, char ***argv, UserCallback Callback);
} // namespace fuzzer

#define FuzzerDriver FuzzerDriverShim
