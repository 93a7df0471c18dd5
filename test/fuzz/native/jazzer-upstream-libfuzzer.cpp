// Glue between the Jazzer.js 2.1.0 native addon and Debian's upstream
// libFuzzer (libclang-rt-14-dev, libclang_rt.fuzzer_no_main-x86_64.a).
//
// Jazzer.js links against CodeIntelligenceTesting/llvm-project-jazzer, a
// patched libFuzzer fetched from GitHub at build time, and its npm prebuilds
// need glibc 2.38 / GLIBCXX_3.4.32 (Debian 12 has 2.36 / 3.4.30). The patches
// the addon relies on are small, so this file supplies them on top of the
// stock library:
//   1. __sanitizer_cov_trace_const_cmp8_with_pc and
//      __sanitizer_cov_trace_pc_indir_with_pc: the addon passes a JS-side
//      comparison id as the "PC". Upstream only has the variants that take the
//      PC from their return address, so the id selects one of kSites distinct
//      call sites, each of which calls the upstream hook.
//   2. The death callback: upstream libFuzzer registers it through the weak
//      __sanitizer_set_death_callback; the addon expects it in
//      libfuzzer::PrintCrashingInput (the fork's __jazzer_set_death_callback).
//   3. A fuzz callback result of -2 (libfuzzer::RETURN_EXIT, a JS finding)
//      must stop the loop and return to JS, which then reports the finding.
//      Upstream has no such result, so the driver is entered under setjmp and
//      left with longjmp. The process exits right after, so the libFuzzer
//      frames skipped here are never resumed.
//   4. __sanitizer_acquire_crash_state grants the crash report once, as the
//      sanitizers do (the addon's own copy, which always grants, is renamed
//      away at build time). Claiming it on the -2 path keeps libFuzzer's exit
//      handler from reporting the same finding a second time as "fuzz target
//      exited" when Node then exits.
#include <array>
#include <atomic>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <sys/time.h>
#include <utility>

namespace fuzzer {
typedef int (*UserCallback)(const uint8_t *Data, size_t Size);
int FuzzerDriver(int *argc, char ***argv, UserCallback Callback);
} // namespace fuzzer

namespace libfuzzer {
extern void (*PrintCrashingInput)();
} // namespace libfuzzer

extern "C" {
void __sanitizer_cov_trace_const_cmp8(uint64_t Arg1, uint64_t Arg2);
void __sanitizer_cov_trace_pc_indir(uintptr_t Callee);
}

namespace {
constexpr std::size_t kSites = 1024;
constexpr int kReturnExit = -2;

// Each instantiation is its own function, so the upstream hook sees a distinct
// return address per I. The asm keeps the call from becoming a tail call (which
// would reuse our caller's return address) and the bodies from being merged.
template <std::size_t I>
__attribute__((noinline)) void Cmp8At(uint64_t Arg1, uint64_t Arg2) {
  __sanitizer_cov_trace_const_cmp8(Arg1, Arg2);
  asm volatile("" : : "i"(I) : "memory");
}

template <std::size_t I> __attribute__((noinline)) void IndirAt(uintptr_t Callee) {
  __sanitizer_cov_trace_pc_indir(Callee);
  asm volatile("" : : "i"(I) : "memory");
}

using Cmp8Fn = void (*)(uint64_t, uint64_t);
using IndirFn = void (*)(uintptr_t);

template <std::size_t... I>
constexpr std::array<Cmp8Fn, sizeof...(I)> MakeCmp8(std::index_sequence<I...>) {
  return {{&Cmp8At<I>...}};
}

template <std::size_t... I>
constexpr std::array<IndirFn, sizeof...(I)> MakeIndir(std::index_sequence<I...>) {
  return {{&IndirAt<I>...}};
}

const std::array<Cmp8Fn, kSites> kCmp8Sites = MakeCmp8(std::make_index_sequence<kSites>{});
const std::array<IndirFn, kSites> kIndirSites = MakeIndir(std::make_index_sequence<kSites>{});

std::atomic<bool> gCrashStateTaken{false};
fuzzer::UserCallback gAddonCallback = nullptr;
std::jmp_buf gStopFuzzing;

int StopAwareCallback(const uint8_t *Data, size_t Size) {
  int result = gAddonCallback(Data, Size);
  if (result == kReturnExit) {
    // libFuzzer's -timeout alarm would otherwise fire on the abandoned unit.
    struct itimerval off = {};
    setitimer(ITIMER_REAL, &off, nullptr);
    gCrashStateTaken.exchange(true);
    std::longjmp(gStopFuzzing, 1);
  }
  return result;
}
} // namespace

extern "C" void __sanitizer_cov_trace_const_cmp8_with_pc(uintptr_t CalledPc, uint64_t Arg1,
                                                         uint64_t Arg2) {
  kCmp8Sites[CalledPc % kSites](Arg1, Arg2);
}

extern "C" void __sanitizer_cov_trace_pc_indir_with_pc(void *CallerPc, uintptr_t Callee) {
  kIndirSites[reinterpret_cast<uintptr_t>(CallerPc) % kSites](Callee);
}

extern "C" int __sanitizer_acquire_crash_state() { return gCrashStateTaken.exchange(true) ? 0 : 1; }

extern "C" void __sanitizer_set_death_callback(void (*Callback)()) {
  libfuzzer::PrintCrashingInput = Callback;
}

namespace fuzzer {
int FuzzerDriverShim(int *argc, char ***argv, UserCallback Callback) {
  gAddonCallback = Callback;
  if (setjmp(gStopFuzzing) != 0) {
    return 0;
  }
  return FuzzerDriver(argc, argv, StopAwareCallback);
}
} // namespace fuzzer
