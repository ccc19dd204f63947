// libFuzzer target: SafetensorsFile::parse on arbitrary bytes. Any input must either
// parse into tensors that lie inside the buffer or throw dsv4::Error; crashes, sanitizer
// reports and other exception types are bugs.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto tensors = dsv4::io::SafetensorsFile::parse(data, size, "fuzz-input");
    // Touch every byte the parser promised is valid, so ASan flags any range it got wrong.
    volatile uint8_t sink = 0;
    for (const auto& t : tensors)
      for (uint64_t i = 0; i < t.nbytes; ++i) sink = sink ^ t.data[i];
    (void)sink;
  } catch (const dsv4::Error&) {
    // Rejected input: the expected outcome for almost everything the fuzzer makes.
  }
  return 0;
}
