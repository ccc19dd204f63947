#include "backend/cpu/prefetch.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace dsv4::backend::cpu {
namespace {

bool cpu_is_amd() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
  char vendor[13];
  std::memcpy(vendor, &ebx, 4);
  std::memcpy(vendor + 4, &edx, 4);
  std::memcpy(vendor + 8, &ecx, 4);
  vendor[12] = '\0';
  return std::strcmp(vendor, "AuthenticAMD") == 0 || std::strcmp(vendor, "HygonGenuine") == 0;
#else
  return false;
#endif
}

bool is_hint_name(const char* s) { return std::strcmp(s, "nta") == 0 || std::strcmp(s, "l2") == 0; }

bool choose_prefetch_nta() {
  const char* env = std::getenv("DSV4_PREFETCH");
  if (env != nullptr && !is_hint_name(env))
    std::fprintf(stderr, "dsv4: ignoring DSV4_PREFETCH=%s (expected nta or l2)\n", env);
  return prefetch_nta_for(env, cpu_is_amd());
}

}  // namespace

bool prefetch_nta_for(const char* env, bool amd) {
  return env != nullptr && is_hint_name(env) ? std::strcmp(env, "nta") == 0 : amd;
}

const bool g_prefetch_nta = choose_prefetch_nta();

const char* prefetch_hint_name() { return g_prefetch_nta ? "nta" : "l2"; }

}  // namespace dsv4::backend::cpu
