// TensorFlow TensorBundle (checkpoint V2) reader: the format behind SavedModel `variables/` and
// `model.ckpt.*`.
//
//   <prefix>.index                  LevelDB-style table (footer + magic 0xdb4775248b80fb57,
//                                   index block, data blocks with prefix-compressed keys and
//                                   restart points, per-block trailer: compression byte +
//                                   masked CRC32C). Keys are tensor names; values are
//                                   BundleEntryProto; the empty key holds BundleHeaderProto.
//   <prefix>.data-0000K-of-0000N    raw tensor bytes (little-endian, C order); each entry's
//                                   masked CRC32C is checked on read. DT_STRING tensors are
//                                   [varint64 len]* [u32 length checksum] [bytes]*.
// Errors: malformed/truncated index -> DataLoss, snappy-compressed blocks, big-endian bundles
// and sliced (partitioned) variables -> Unimplemented, missing shard -> NotFound, checksum
// mismatch -> DataLoss naming the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"
#include "tensorflow.pb.h"

namespace kiln {

// CRC32C (Castagnoli) and TF/LevelDB's masking, exposed for tests.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);
uint32_t MaskCrc32c(uint32_t crc);

class TensorBundleReader {
 public:
  // Reads and verifies `<prefix>.index` and checks that every data shard exists.
  static StatusOr<TensorBundleReader> Open(const std::string& prefix);

  const tfpb::BundleHeaderProto& header() const { return header_; }
  std::vector<std::string> keys() const;  // sorted, header key excluded
  bool Contains(const std::string& key) const { return entries_.count(key) != 0; }
  StatusOr<tfpb::BundleEntryProto> Entry(const std::string& key) const;

  // The tensor stored under `key` as a TensorProto (dtype, shape, tensor_content or
  // string_val), ready for a Const NodeDef; CRC-checked.
  StatusOr<tfpb::TensorProto> ReadProto(const std::string& key) const;
  // Same, as a kiln Tensor (dtypes kiln lacks -> Unimplemented).
  StatusOr<Tensor> Read(const std::string& key) const;

 private:
  std::string prefix_;
  tfpb::BundleHeaderProto header_;
  std::map<std::string, tfpb::BundleEntryProto> entries_;
};

// `<prefix>.data-%05d-of-%05d`.
std::string BundleShardPath(const std::string& prefix, int shard, int num_shards);

}  // namespace kiln
