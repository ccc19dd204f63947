// Memory-mapped safetensors: one file, or a sharded checkpoint directory described by
// model.safetensors.index.json. No math here: this layer only finds bytes and checks
// that headers are well formed and that every tensor lies inside its file.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"

namespace dsv4::io {

// Where a checkpoint's bytes live once opened.
//   kMap:   the read-only file mapping (zero copy, instant start), 2 MiB-aligned with
//           huge pages advised: where the kernel and file system keep large page-cache
//           folios (ext4/XFS on recent kernels) it is mapped in 2 MiB pages; elsewhere
//           in 4 KiB pages, which stream randomly chosen experts several times slower.
//           Tensors keep the file's alignment, 8 bytes at best.
//   kCopy:  read once into private anonymous memory backed by transparent huge pages
//           (2 MiB pages: fewer TLB misses, the streaming rate of plain memory), each
//           tensor on a 64-byte boundary (no vector load of a weight row splits a line).
//   kSplit: the tensors the caller marks as streamed (the model: routed experts, of
//           which each token reads a few) stay in the mapping as in kMap; all others
//           (read by every token) are copied as in kCopy. Without such a mark, kCopy.
//   kAuto:  kCopy when the whole checkpoint fits in half of the available memory
//           (MemAvailable, capped by the memory cgroup's headroom), else kSplit when the
//           tensors it would copy fit there, else kMap.
// See docs/performance.md ("Weight residency") for the measurements.
enum class Residency { kAuto, kMap, kCopy, kSplit };
// "auto", "mmap", "copy", "split"; nullopt for anything else.
std::optional<Residency> parse_residency(const std::string& name);
const char* residency_name(Residency r);
// What kAuto picks for a checkpoint of `total_bytes` on this machine (/proc/meminfo);
// split_copy_bytes: what kSplit would copy (nullopt: kSplit is not an option).
Residency resolve_residency(Residency r, uint64_t total_bytes, std::optional<uint64_t> split_copy_bytes = std::nullopt);
// Which tensors kSplit leaves in the file mapping, by name.
using StreamedTensors = std::function<bool(const std::string& name)>;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapping; valid while the file is open
  uint64_t nbytes = 0;
  std::string file;               // path of the file holding it (for error messages)

  int64_t numel() const;
  std::string shape_str() const;  // "[4, 256]"
};

// One .safetensors file, memory-mapped read-only. Throws dsv4::Error (message names the
// file) on: unreadable file, file shorter than 8 bytes, header length past end of file,
// malformed JSON, unknown dtype, bad shape, data_offsets that do not match dtype*shape,
// lie outside the data area, or overlap.
class SafetensorsFile {
 public:
  // residency: kMap, kCopy or kSplit (kAuto is resolved by the caller; here it means
  // kMap); streamed: kSplit's mapped tensors (empty: none, i.e. kCopy).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path, Residency residency = Residency::kMap,
                                               const StreamedTensors& streamed = {});
  // Parses a header already in memory (bytes = whole file). Used by open() and the fuzzer;
  // the returned tensors point into `bytes`.
  static std::vector<TensorInfo> parse(const uint8_t* bytes, uint64_t size, const std::string& path_for_errors);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The memory this file's tensors occupy: the mapping and/or the copy, as
  // [begin, begin + size) ranges.
  std::vector<std::pair<const void*, uint64_t>> regions() const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  // What munmap releases: the file mapping (kMap, kSplit) and the copy's region (kCopy,
  // kSplit; over-allocated to start on a 2 MiB boundary, each tensor on a 64-byte
  // boundary inside it).
  void* map_ = nullptr;
  uint64_t map_size_ = 0;
  void* copy_ = nullptr;
  uint64_t copy_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
};

// A checkpoint directory: model.safetensors.index.json + shards, or a single
// model.safetensors. Every shard is mapped once.
class Checkpoint {
 public:
  // Throws dsv4::Error on an unreadable directory, malformed index, a shard named by
  // the index that is missing, or a tensor the index maps to a shard that lacks it.
  // streamed: the tensors kSplit (and kAuto, when it picks kSplit) leave in the mapping.
  static std::unique_ptr<Checkpoint> open(const std::string& dir, Residency residency = Residency::kMap,
                                          const StreamedTensors& streamed = {});

  const std::string& dir() const { return dir_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  // Throws dsv4::Error "<dir>: missing tensor '<name>'" if absent.
  const TensorInfo& get(const std::string& name) const;
  std::vector<const TensorInfo*> all() const;  // every tensor, sorted by name
  size_t size() const { return by_name_.size(); }
  Residency residency() const { return residency_; }  // kMap, kCopy or kSplit, as resolved
  uint64_t file_bytes() const { return file_bytes_; }  // all shards together
  // How many bytes of the shards' memory sit in 2 MiB pages right now (anonymous huge
  // pages of a copy, PMD-mapped page-cache folios of a mapping), from /proc/self/smaps;
  // nullopt where that cannot be read. Only pages touched so far count.
  std::optional<uint64_t> huge_page_bytes() const;
  // The bar both the loader (re-caching a mapped shard) and `dsv4 bench` (its hint) use:
  // true when under 3/4 of the memory maps as 2 MiB pages (over a quarter in small ones).
  static bool many_small_pages(uint64_t huge_bytes, uint64_t bytes) { return huge_bytes < bytes / 4 * 3; }

 private:
  std::string dir_;
  Residency residency_ = Residency::kMap;
  uint64_t file_bytes_ = 0;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> by_name_;
};

// Writes safetensors files in the official layout: 8-byte little-endian header length,
// JSON header padded with spaces to a multiple of 8, `__metadata__` {"format": "pt"},
// then the tensors back to back in the order added.
class SafetensorsWriter {
 public:
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  void write(const std::string& path) const;  // throws dsv4::Error on I/O failure
  uint64_t data_bytes() const;
  std::vector<std::string> names() const;

 private:
  struct Entry { std::string name; DType dtype; std::vector<int64_t> shape; std::vector<uint8_t> bytes; };
  std::vector<Entry> entries_;
};

// Writes model.safetensors.index.json: {"metadata": {"total_size": N}, "weight_map": {...}}.
void write_index(const std::string& path, uint64_t total_size,
                 const std::map<std::string, std::string>& weight_map);

}  // namespace dsv4::io
