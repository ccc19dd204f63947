#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "io/util.h"

namespace dsv4::io {

namespace {

using json = nlohmann::json;

// A real header is a few MB at most (the full release has ~50k tensors, ~5 MB of JSON).
// Anything far larger is a corrupt length field; refuse it before touching the bytes.
constexpr uint64_t kMaxHeaderBytes = uint64_t(256) << 20;
// The header is object -> tensor object -> shape list: depth 3. A generous limit keeps
// hostile inputs (millions of '[') away from deep recursion anywhere downstream.
constexpr int kMaxJsonDepth = 16;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Largest nesting of [ and { outside strings; stops counting once past `limit`.
int json_depth(const uint8_t* p, uint64_t n, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (uint64_t i = 0; i < n; ++i) {
    const uint8_t c = p[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > limit) return max_depth;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

struct ParseCtx {
  const std::string& path;
  [[noreturn]] void fail(const std::string& what) const { throw Error(path + ": " + one_line(what)); }
  [[noreturn]] void fail_tensor(const std::string& name, const std::string& what) const {
    throw Error(path + ": tensor " + quoted(name) + ": " + one_line(what));
  }
};

// A non-negative JSON integer that fits int64, or nullopt.
std::optional<int64_t> as_nonneg_int(const json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return int64_t(u);
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return std::nullopt;
    return s;
  }
  return std::nullopt;
}

std::vector<int64_t> parse_shape(const ParseCtx& ctx, const std::string& name, const json& v) {
  if (!v.is_array()) ctx.fail_tensor(name, "shape is not a list of non-negative integers");
  std::vector<int64_t> shape;
  for (const json& d : v) {
    const auto n = as_nonneg_int(d);
    if (!n) ctx.fail_tensor(name, "shape is not a list of non-negative integers");
    shape.push_back(*n);
  }
  return shape;
}

// numel * element size, or nullopt when it does not fit 64 bits.
std::optional<uint64_t> checked_nbytes(const std::vector<int64_t>& shape, size_t elem_size) {
  uint64_t total = elem_size;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(total, uint64_t(d), &total)) return std::nullopt;
  return total;
}

struct Span { uint64_t begin, end; size_t index; };

TensorInfo parse_tensor(const ParseCtx& ctx, const std::string& name, const json& v, uint64_t data_size,
                        Span& span) {
  if (!v.is_object()) ctx.fail_tensor(name, "entry is not an object");
  const auto dtype_it = v.find("dtype");
  if (dtype_it == v.end() || !dtype_it->is_string()) ctx.fail_tensor(name, "missing or non-string dtype");
  const std::string dtype_str = dtype_it->get<std::string>();
  const auto dtype = dtype_from_name(dtype_str);
  if (!dtype) ctx.fail_tensor(name, "unknown dtype " + quoted(dtype_str));

  const auto shape_it = v.find("shape");
  if (shape_it == v.end()) ctx.fail_tensor(name, "missing shape");
  TensorInfo t;
  t.name = name;
  t.dtype = *dtype;
  t.shape = parse_shape(ctx, name, *shape_it);
  t.file = ctx.path;

  const auto off_it = v.find("data_offsets");
  if (off_it == v.end() || !off_it->is_array() || off_it->size() != 2)
    ctx.fail_tensor(name, "data_offsets is not a list of two integers");
  const auto begin = as_nonneg_int((*off_it)[0]), end = as_nonneg_int((*off_it)[1]);
  if (!begin || !end) ctx.fail_tensor(name, "data_offsets is not a list of two non-negative integers");
  if (*begin > *end) ctx.fail_tensor(name, "data_offsets out of order [" + std::to_string(*begin) + ", " +
                                               std::to_string(*end) + "]");
  const auto nbytes = checked_nbytes(t.shape, dtype_size(t.dtype));
  if (!nbytes) ctx.fail_tensor(name, "shape " + t.shape_str() + " overflows 64 bits");
  const uint64_t span_bytes = uint64_t(*end - *begin);
  if (span_bytes != *nbytes)
    ctx.fail_tensor(name, "data_offsets span " + std::to_string(span_bytes) + " bytes but " + dtype_str + " " +
                              t.shape_str() + " needs " + std::to_string(*nbytes));
  if (uint64_t(*end) > data_size)
    ctx.fail_tensor(name, "bytes [" + std::to_string(*begin) + ", " + std::to_string(*end) +
                              ") lie outside the data area of " + std::to_string(data_size) + " bytes");
  t.nbytes = *nbytes;
  span.begin = uint64_t(*begin);
  span.end = uint64_t(*end);
  return t;
}

std::map<std::string, std::string> parse_metadata(const ParseCtx& ctx, const json& v) {
  if (!v.is_object()) ctx.fail("__metadata__ is not an object");
  std::map<std::string, std::string> out;
  for (const auto& [k, val] : v.items()) {
    if (!val.is_string()) ctx.fail("__metadata__ value " + quoted(k) + " is not a string");
    out[k] = val.get<std::string>();
  }
  return out;
}

// Tensors must not share bytes (zero-size tensors share nothing).
void check_no_overlap(const ParseCtx& ctx, std::vector<Span> spans, const std::vector<TensorInfo>& tensors) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  const Span* prev = nullptr;
  for (const Span& s : spans) {
    if (s.begin == s.end) continue;
    if (prev && s.begin < prev->end)
      ctx.fail_tensor(tensors[s.index].name, "bytes overlap tensor " + quoted(tensors[prev->index].name));
    if (!prev || s.end > prev->end) prev = &s;
  }
}

struct Parsed {
  std::vector<TensorInfo> tensors;
  std::vector<uint64_t> offsets;  // each tensor's first byte, from the start of the file
  std::map<std::string, std::string> metadata;
};

// bytes: the file's first `size` bytes, or (header_only) just the 8-byte length and the
// JSON header, in which case every TensorInfo::data is left null for the caller to place.
Parsed parse_all(const uint8_t* bytes, uint64_t size, const std::string& path, bool header_only = false) {
  const ParseCtx ctx{path};
  if (size < 8) ctx.fail("file too short for a safetensors header (" + std::to_string(size) + " bytes)");
  const uint64_t header_len = read_u64_le(bytes);
  if (header_len > kMaxHeaderBytes)
    ctx.fail("header length " + std::to_string(header_len) + " is absurdly large (limit " +
             std::to_string(kMaxHeaderBytes) + ")");
  if (header_len > size - 8)
    ctx.fail("header length " + std::to_string(header_len) + " runs past end of file (" + std::to_string(size) +
             " bytes)");
  const uint8_t* header = bytes + 8;
  if (json_depth(header, header_len, kMaxJsonDepth) > kMaxJsonDepth) ctx.fail("malformed JSON header: nested too deeply");

  json root;
  try {
    root = json::parse(header, header + header_len);
  } catch (const json::exception& e) {
    ctx.fail(std::string("malformed JSON header: ") + e.what());
  }
  if (!root.is_object()) ctx.fail("JSON header is not an object");

  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* data = header + header_len;
  Parsed out;
  std::vector<Span> spans;
  for (const auto& [name, entry] : root.items()) {
    if (name == "__metadata__") {
      out.metadata = parse_metadata(ctx, entry);
      continue;
    }
    Span span{0, 0, out.tensors.size()};
    TensorInfo t = parse_tensor(ctx, name, entry, data_size, span);
    t.data = header_only ? nullptr : data + span.begin;
    out.tensors.push_back(std::move(t));
    out.offsets.push_back(8 + header_len + span.begin);
    spans.push_back(span);
  }
  check_no_overlap(ctx, std::move(spans), out.tensors);
  return out;
}

std::string errno_text() { return std::strerror(errno); }

}  // namespace

// ---------------------------------------------------------------- TensorInfo

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// ---------------------------------------------------------------- SafetensorsFile

std::vector<TensorInfo> SafetensorsFile::parse(const uint8_t* bytes, uint64_t size, const std::string& path) {
  return parse_all(bytes, size, path).tensors;
}

namespace {

constexpr uint64_t kHugePage = uint64_t(2) << 20;

// Sum of the AnonHugePages and FilePmdMapped fields of the /proc/self/smaps entries that
// overlap one of `ranges` ([begin, end) addresses); nullopt if smaps cannot be read.
std::optional<uint64_t> smaps_huge_bytes(const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges) {
  std::ifstream in("/proc/self/smaps");
  if (!in) return std::nullopt;
  uint64_t total = 0;
  bool inside = false;
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long lo = 0, hi = 0, kb = 0;
    char field[64];
    if (std::sscanf(line.c_str(), "%llx-%llx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = false;  // a new mapping's header line: "lo-hi perms offset dev inode path"
      for (const auto& [b, e] : ranges) inside = inside || (lo < e && b < hi);
    } else if (inside && std::sscanf(line.c_str(), "%63[^:]: %llu kB", field, &kb) == 2 &&
               (std::strcmp(field, "AnonHugePages") == 0 || std::strcmp(field, "FilePmdMapped") == 0)) {
      total += uint64_t(kb) * 1024;
    }
  }
  return total;
}

// A file written shortly before (a download, a converter) sits in the page cache in
// 4 KiB folios, and a mapping can only map those with 4 KiB pages, whatever it advises:
// random expert reads then ran 4x slower on the dev VM until the pages happened to be
// evicted (and with half of a checkpoint's windows in 4 KiB pages, decode took 46.5
// against 36 ms per token). If fewer than 3/4 of the resident 2 MiB windows of this
// mapping (m, size bytes, huge pages advised) map as 2 MiB pages, and some of a few
// windows dropped and read again come back as 2 MiB pages (so the kernel and file
// system can), the file's cached pages are dropped so that first use reads them into
// 2 MiB folios: a one-time re-read from disk. Where the file system keeps no large
// folios, nothing beyond those few windows is dropped. Everything here is advice; a
// failed call changes nothing.
void recache_small_folios(int fd, uint8_t* m, uint64_t size) {
  if (size < 4 * kHugePage) return;
  const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> resident(size_t((size + page - 1) / page));
  if (::mincore(m, size, resident.data()) != 0) return;
  // Map the first page of every resident 2 MiB window; smaps then says how many of
  // those windows came as whole 2 MiB pages.
  std::vector<uint64_t> windows;  // offsets of the resident windows
  volatile uint8_t sink = 0;
  for (uint64_t off = 0; off + kHugePage <= size; off += kHugePage) {
    if ((resident[size_t(off / page)] & 1) == 0) continue;
    sink = sink + m[off];
    windows.push_back(off);
  }
  if (windows.empty()) return;  // nothing cached: read-ahead fills 2 MiB folios itself
  const auto base = reinterpret_cast<uintptr_t>(m);
  const std::optional<uint64_t> before = smaps_huge_bytes({{base, base + size}});
  if (!before || !Checkpoint::many_small_pages(*before, uint64_t(windows.size()) * kHugePage)) return;
  // Probe eight windows spread over the resident ones (some are likely small): drop
  // them, read them again, and see whether more of the mapping is now in 2 MiB pages.
  constexpr size_t kProbes = 8;
  for (size_t i = 0; i < std::min(kProbes, windows.size()); ++i) {
    const uint64_t off = windows[i * windows.size() / std::min(kProbes, windows.size())];
    ::madvise(m + off, kHugePage, MADV_DONTNEED);
    ::posix_fadvise(fd, off_t(off), off_t(kHugePage), POSIX_FADV_DONTNEED);
    sink = sink + m[off];
  }
  const std::optional<uint64_t> after = smaps_huge_bytes({{base, base + size}});
  if (!after || *after <= *before) return;
  ::madvise(m, size, MADV_DONTNEED);                         // our own references first,
  ::posix_fadvise(fd, 0, off_t(size), POSIX_FADV_DONTNEED);  // then the clean cached pages
}

// Maps `fd` read-only (zero copy) at a 2 MiB-aligned address, with huge pages asked for.
// Page-cache pages are 4 KiB unless the file system keeps large folios (ext4 and XFS on
// recent kernels) and the mapping asks for them: then read-ahead fills 2 MiB folios
// that a 2 MiB-aligned mapping maps whole (FilePmdMapped). Measured on the 2-core dev
// VM, 9.3 GB checkpoint: random 4 MiB expert reads 8-12 GB/s in 4 KiB pages, 36-40
// GB/s in 2 MiB ones. Both steps are advice: where the kernel cannot, 4 KiB pages stay.
void* map_file(int fd, uint64_t size, const std::string& path) {
  // Reserve size + 2 MiB of address space, then map the file over its aligned start and
  // give back the slack on both sides.
  const uint64_t reserve = size + kHugePage;
  void* r = ::mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) throw Error(path + ": cannot reserve address space to map it: " + errno_text());
  const auto base = reinterpret_cast<uintptr_t>(r);
  const uintptr_t start = (base + kHugePage - 1) & ~uintptr_t(kHugePage - 1);
  void* m = ::mmap(reinterpret_cast<void*>(start), size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
  if (m == MAP_FAILED) {
    const std::string why = errno_text();
    ::munmap(r, reserve);
    throw Error(path + ": cannot mmap: " + why);
  }
  const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t end = (start + size + page - 1) / page * page;
  if (start > base) ::munmap(r, start - base);
  if (base + reserve > end) ::munmap(reinterpret_cast<void*>(end), base + reserve - end);
  ::madvise(m, size, MADV_HUGEPAGE);
  recache_small_folios(fd, static_cast<uint8_t*>(m), size);
  return m;
}

// MADV_COLLAPSE (Linux 6.1; glibc headers before 2.37 lack the name).
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

// Reads exactly n bytes at offset off of fd into dst.
void pread_full(int fd, uint8_t* dst, uint64_t n, uint64_t off, const std::string& path) {
  uint64_t done = 0;
  while (done < n) {
    const size_t want = size_t(std::min<uint64_t>(n - done, uint64_t(64) << 20));
    const ssize_t got = ::pread(fd, dst + done, want, off_t(off + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const std::string why = got < 0 ? errno_text() : std::string("file shrank while reading");
      throw Error(path + ": read failed at byte " + std::to_string(off + done) + ": " + why);
    }
    done += uint64_t(got);
  }
}

// The header of a file of `size` bytes, parsed (tensor data pointers left null).
Parsed read_header(int fd, uint64_t size, const std::string& path) {
  std::vector<uint8_t> head(size_t(std::min<uint64_t>(size, 8)));
  pread_full(fd, head.data(), head.size(), 0, path);
  if (head.size() == 8) {
    const uint64_t header_len = read_u64_le(head.data());
    // Out-of-range lengths are reported by parse_all from the first 8 bytes alone.
    if (header_len <= kMaxHeaderBytes && header_len <= size - 8) {
      head.resize(size_t(8 + header_len));
      pread_full(fd, head.data() + 8, header_len, 8, path);
    }
  }
  return parse_all(head.data(), size, path, /*header_only=*/true);
}

constexpr uint64_t kTensorAlign = 64;  // a cache line: a weight row's vector loads never split one

// Copies every tensor of the file into anonymous memory that starts on a 2 MiB boundary
// (transparent huge pages asked for), each tensor on its own 64-byte boundary, then makes
// it read-only (a stray write faults instead of silently changing a weight). In the file
// tensors start wherever the previous one ended: 8-byte aligned at best, so on the file's
// layout half of the kernels' 64-byte weight loads straddle two cache lines (measured:
// [4096, 8192] FP8 at 35-38 GB/s in the model against 48-53 GB/s aligned).
// Only the tensors for which `copy` is true (all when it is empty) are copied; the others
// keep their data pointers. Returns the region to munmap ({nullptr, 0} when nothing is
// copied); sets each copied tensor's data pointer.
std::pair<void*, uint64_t> copy_aligned(int fd, const std::string& path, Parsed& parsed,
                                        const std::vector<bool>& copy = {}) {
  std::vector<size_t> order;
  for (size_t i = 0; i < parsed.tensors.size(); ++i)
    if (copy.empty() || copy[i]) order.push_back(i);
  if (order.empty()) return {nullptr, 0};
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return parsed.offsets[a] < parsed.offsets[b]; });
  std::vector<uint64_t> at(parsed.tensors.size());
  uint64_t total = 0;
  for (size_t i : order) {
    total = (total + kTensorAlign - 1) / kTensorAlign * kTensorAlign;
    at[i] = total;
    total += parsed.tensors[i].nbytes;
  }
  const uint64_t region_size = std::max<uint64_t>(total, 1) + kHugePage;
  void* region = ::mmap(nullptr, region_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED)
    throw Error(path + ": cannot allocate " + std::to_string(region_size) + " bytes for its tensors: " + errno_text());
  auto* p = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(region) + kHugePage - 1) & ~(kHugePage - 1));
  ::madvise(p, total, MADV_HUGEPAGE);  // advice only: without THP the copy still works
  try {
    for (size_t i : order) pread_full(fd, p + at[i], parsed.tensors[i].nbytes, parsed.offsets[i], path);
  } catch (...) {
    ::munmap(region, region_size);
    throw;
  }
  for (size_t i : order) parsed.tensors[i].data = p + at[i];
  // With the checkpoint's own page cache filling memory, the fault path often finds no
  // free 2 MiB page for the last shards read and falls back to 4 KiB pages (measured:
  // 300 MB of a 9.3 GB copy), which stream a third slower. Collapse them now, while
  // nothing reads the weights; an old kernel (EINVAL) or no memory to compact leaves the
  // copy as it is.
  ::madvise(p, total, MADV_COLLAPSE);
  ::mprotect(p, total, PROT_READ);
  return {region, region_size};
}

}  // namespace

std::optional<Residency> parse_residency(const std::string& name) {
  if (name == "auto") return Residency::kAuto;
  if (name == "mmap") return Residency::kMap;
  if (name == "copy") return Residency::kCopy;
  if (name == "split") return Residency::kSplit;
  return std::nullopt;
}

const char* residency_name(Residency r) {
  switch (r) {
    case Residency::kAuto: return "auto";
    case Residency::kMap: return "mmap";
    case Residency::kCopy: return "copy";
    case Residency::kSplit: return "split";
  }
  return "?";
}

namespace {

// First number in a file (cgroup limit/usage files); nullopt if unreadable or "max".
std::optional<uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  uint64_t v = 0;
  if (!(in >> v)) return std::nullopt;
  return v;
}

// Bytes this process may still take under its memory cgroup (v2 memory.max minus
// memory.current, or v1 limit_in_bytes minus usage_in_bytes); nullopt when unlimited or
// unknown. In a container MemAvailable describes the host, not the container's limit.
std::optional<uint64_t> cgroup_headroom() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
    std::optional<uint64_t> limit, usage;
    if (controllers.empty()) {  // v2 unified hierarchy
      limit = read_number("/sys/fs/cgroup" + path + "/memory.max");
      usage = read_number("/sys/fs/cgroup" + path + "/memory.current");
    } else if (controllers == "memory") {  // v1
      limit = read_number("/sys/fs/cgroup/memory" + path + "/memory.limit_in_bytes");
      usage = read_number("/sys/fs/cgroup/memory" + path + "/memory.usage_in_bytes");
    }
    if (limit && usage && *limit < (uint64_t(1) << 60)) return *limit > *usage ? *limit - *usage : 0;
  }
  return std::nullopt;
}

// MemAvailable (which counts the reclaimable page cache, so a checkpoint that is cached
// already is not counted twice), capped by the cgroup's headroom.
std::optional<uint64_t> memory_available() {
  std::ifstream in("/proc/meminfo");
  std::string key, unit;
  uint64_t kib = 0;
  std::optional<uint64_t> avail;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "MemAvailable:") avail = kib * 1024;
  }
  if (!avail) return std::nullopt;
  if (const auto headroom = cgroup_headroom()) avail = std::min(*avail, *headroom);
  return avail;
}

}  // namespace

Residency resolve_residency(Residency r, uint64_t total_bytes, std::optional<uint64_t> split_copy_bytes) {
  if (r != Residency::kAuto) return r;
  const std::optional<uint64_t> avail = memory_available();
  if (!avail) return Residency::kMap;  // unknown memory: do not risk it
  if (total_bytes <= *avail / 2) return Residency::kCopy;
  if (split_copy_bytes && *split_copy_bytes <= *avail / 2) return Residency::kSplit;
  return Residency::kMap;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, Residency residency,
                                                       const StreamedTensors& streamed) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string why = errno_text();
    ::close(fd);
    throw Error(path + ": cannot stat: " + why);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  const uint64_t size = uint64_t(st.st_size);
  Parsed parsed;
  try {
    std::optional<Parsed> header;  // the header where kSplit had to read it before mapping
    if (residency == Residency::kSplit) {
      // A file without a streamed tensor is copied whole, without a mapping (whose
      // small-folio check could drop cached pages that the copy then reads again).
      bool any_streamed = false;
      if (streamed) {
        header = read_header(fd, size, path);
        for (const TensorInfo& t : header->tensors) any_streamed = any_streamed || streamed(t.name);
      }
      if (!any_streamed) residency = Residency::kCopy;
    }
    if (residency == Residency::kCopy) {
      parsed = header ? std::move(*header) : read_header(fd, size, path);
      std::tie(f->copy_, f->copy_size_) = copy_aligned(fd, path, parsed);
    } else {
      if (size > 0) {
        f->map_ = map_file(fd, size, path);
        f->map_size_ = size;
      }
      if (header) {  // already parsed and checked against the file's size: place it
        parsed = std::move(*header);
        for (size_t i = 0; i < parsed.tensors.size(); ++i)
          parsed.tensors[i].data = static_cast<const uint8_t*>(f->map_) + parsed.offsets[i];
      } else {
        parsed = parse_all(static_cast<const uint8_t*>(f->map_), size, path);
      }
      if (residency == Residency::kSplit) {
        std::vector<bool> copy(parsed.tensors.size());
        for (size_t i = 0; i < copy.size(); ++i) copy[i] = !streamed(parsed.tensors[i].name);
        std::tie(f->copy_, f->copy_size_) = copy_aligned(fd, path, parsed, copy);
        // Forget the mapping's pages touched so far (the small-folio check maps some):
        // the copied tensors are never read through it, and a streamed one faults back
        // in on first use.
        ::madvise(f->map_, size, MADV_DONTNEED);
      }
    }
  } catch (...) {
    ::close(fd);
    throw;  // f's destructor releases a mapping made before a parse error
  }
  ::close(fd);  // a mapping keeps the file alive; a copy no longer needs it
  f->tensors_ = std::move(parsed.tensors);
  f->metadata_ = std::move(parsed.metadata);
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->by_name_[f->tensors_[i].name] = i;
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(map_, map_size_);
  if (copy_) ::munmap(copy_, copy_size_);
}

std::vector<std::pair<const void*, uint64_t>> SafetensorsFile::regions() const {
  std::vector<std::pair<const void*, uint64_t>> r;
  if (map_) r.emplace_back(map_, map_size_);
  if (copy_) r.emplace_back(copy_, copy_size_);
  return r;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------- Checkpoint

namespace {

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + errno_text());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return ss.str();
}

// weight_map from model.safetensors.index.json (tensor name -> shard file name).
std::map<std::string, std::string> read_weight_map(const std::string& index_path) {
  json root;
  try {
    root = json::parse(read_text_file(index_path));
  } catch (const json::exception& e) {
    throw Error(index_path + ": malformed JSON: " + one_line(e.what()));
  }
  if (!root.is_object()) throw Error(index_path + ": index is not a JSON object");
  const auto wm = root.find("weight_map");
  if (wm == root.end() || !wm->is_object()) throw Error(index_path + ": missing or non-object \"weight_map\"");
  std::map<std::string, std::string> out;
  for (const auto& [name, shard] : wm->items()) {
    if (!shard.is_string()) throw Error(index_path + ": weight_map entry " + quoted(name) + " is not a string");
    const std::string file = shard.get<std::string>();
    // Shards sit next to the index; a path would let a checkpoint reach outside its directory.
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      throw Error(index_path + ": weight_map entry " + quoted(name) + " names an invalid shard " + quoted(file));
    out[name] = file;
  }
  return out;
}

}  // namespace

namespace {

uint64_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

}  // namespace

std::optional<uint64_t> Checkpoint::huge_page_bytes() const {
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges;
  for (const auto& f : files_) {
    for (const auto& [p, n] : f->regions())
      ranges.emplace_back(reinterpret_cast<uintptr_t>(p), reinterpret_cast<uintptr_t>(p) + n);
  }
  return smaps_huge_bytes(ranges);
}

namespace {

// kAuto's choice for these files: kSplit is weighed only where kCopy does not fit and
// there is a `streamed` mark, and then costs one more read of every header.
Residency resolve_auto(Residency r, uint64_t total_bytes, const std::vector<std::string>& paths,
                       const StreamedTensors& streamed) {
  const Residency plain = resolve_residency(r, total_bytes);
  if (r != Residency::kAuto || plain != Residency::kMap || !streamed) return plain;
  uint64_t copied = 0;
  for (const std::string& path : paths) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path + ": cannot open: " + errno_text());
    try {
      for (const TensorInfo& t : read_header(fd, file_size(path), path).tensors)
        if (!streamed(t.name)) copied += t.nbytes;
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  }
  return resolve_residency(r, total_bytes, copied);
}

}  // namespace

std::unique_ptr<Checkpoint> Checkpoint::open(const std::string& dir, Residency residency,
                                             const StreamedTensors& streamed) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) throw Error(dir + ": cannot open checkpoint: " + errno_text());
  std::unique_ptr<Checkpoint> ck(new Checkpoint());
  ck->dir_ = dir;
  // Opens one whole file as the checkpoint (a lone .safetensors, or model.safetensors).
  auto open_single = [&](const std::string& path) {
    ck->file_bytes_ = file_size(path);
    ck->residency_ = resolve_auto(residency, ck->file_bytes_, {path}, streamed);
    ck->files_.push_back(SafetensorsFile::open(path, ck->residency_, streamed));
    for (const TensorInfo& t : ck->files_.back()->tensors()) ck->by_name_[t.name] = &t;
    return std::move(ck);
  };
  if (S_ISREG(st.st_mode)) return open_single(dir);
  if (!S_ISDIR(st.st_mode)) throw Error(dir + ": not a directory or file");
  if (::access(dir.c_str(), R_OK | X_OK) != 0) throw Error(dir + ": cannot read directory: " + errno_text());

  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  if (is_regular_file(index_path)) {
    const auto weight_map = read_weight_map(index_path);
    // Every shard must exist before any is read (a copy can take minutes), and kAuto
    // needs the total size.
    std::map<std::string, const SafetensorsFile*> shards;
    for (const auto& [name, file] : weight_map) {
      if (shards.count(file)) continue;
      const std::string shard_path = dir + "/" + file;
      if (!is_regular_file(shard_path))
        throw Error(index_path + ": shard " + quoted(file) + " (holding tensor " + quoted(name) + ") is missing");
      shards[file] = nullptr;
      ck->file_bytes_ += file_size(shard_path);
    }
    std::vector<std::string> paths;
    for (const auto& [file, opened] : shards) paths.push_back(dir + "/" + file);
    ck->residency_ = resolve_auto(residency, ck->file_bytes_, paths, streamed);
    for (auto& [file, opened] : shards) {
      ck->files_.push_back(SafetensorsFile::open(dir + "/" + file, ck->residency_, streamed));
      opened = ck->files_.back().get();
    }
    for (const auto& [name, file] : weight_map) {
      const TensorInfo* t = shards.at(file)->find(name);
      if (!t) throw Error(index_path + ": tensor " + quoted(name) + " is not in shard " + quoted(file));
      ck->by_name_[name] = t;
    }
    return ck;
  }
  if (is_regular_file(single_path)) return open_single(single_path);
  throw Error(dir + ": no model.safetensors.index.json or model.safetensors");
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error(dir_ + ": missing tensor " + quoted(name));
  return *t;
}

std::vector<const TensorInfo*> Checkpoint::all() const {
  std::vector<const TensorInfo*> out;
  out.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) out.push_back(t);
  return out;
}

// ---------------------------------------------------------------- writer

void SafetensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  for (int64_t d : shape) check(d >= 0, "safetensors writer: tensor " + quoted(name) + ": negative dimension");
  const auto need = checked_nbytes(shape, dtype_size(dtype));
  check(need && *need == bytes.size(), "safetensors writer: tensor " + quoted(name) + ": " +
                                           std::to_string(bytes.size()) + " bytes do not match dtype and shape");
  check(name != "__metadata__", "safetensors writer: reserved tensor name __metadata__");
  for (const Entry& e : entries_)
    check(e.name != name, "safetensors writer: duplicate tensor " + quoted(name));
  entries_.push_back({name, dtype, std::move(shape), std::move(bytes)});
}

uint64_t SafetensorsWriter::data_bytes() const {
  uint64_t n = 0;
  for (const Entry& e : entries_) n += e.bytes.size();
  return n;
}

std::vector<std::string> SafetensorsWriter::names() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.name);
  return out;
}

void SafetensorsWriter::write(const std::string& path) const {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const Entry& e : entries_) {
    header[e.name] = {{"dtype", std::string(dtype_name(e.dtype))},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_le[8];
  for (int i = 0; i < 8; ++i) len_le[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot create: " + errno_text());
  out.write(reinterpret_cast<const char*>(len_le), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const Entry& e : entries_) out.write(reinterpret_cast<const char*>(e.bytes.data()), std::streamsize(e.bytes.size()));
  out.close();
  if (!out) throw Error(path + ": write failed");
}

void write_index(const std::string& path, uint64_t total_size, const std::map<std::string, std::string>& weight_map) {
  nlohmann::ordered_json root;
  root["metadata"] = {{"total_size", total_size}};
  root["weight_map"] = nlohmann::ordered_json::object();
  for (const auto& [name, file] : weight_map) root["weight_map"][name] = file;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path + ": cannot create: " + errno_text());
  out << root.dump(2) << "\n";
  out.close();
  if (!out) throw Error(path + ": write failed");
}

}  // namespace dsv4::io
