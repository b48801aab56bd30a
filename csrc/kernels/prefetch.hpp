// A hint that memory at p will be read soon (a no-op where the compiler has no builtin).
#pragma once

namespace scurate {

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    (void)p;
#endif
}

}  // namespace scurate
