#include "io/tf/tensor_bundle.h"

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/tf/tf_tensor.h"

namespace kiln {
namespace {

constexpr uint64_t kTableMagic = 0xdb4775248b80fb57ull;
constexpr size_t kFooterSize = 48;       // 2 block handles (<= 40 bytes, padded) + magic
constexpr size_t kBlockTrailerSize = 5;  // compression type + masked crc32c

std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t DecodeFixed32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Varint decoding bounded by [*p, end); false on truncation/overflow.
bool GetVarint64(const char** p, const char* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift <= 63 && *p < end; shift += 7) {
    const uint8_t b = static_cast<uint8_t>(*(*p)++);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFound("cannot open " + path);
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return DataLoss("error reading " + path);
  return s;
}

struct BlockHandle {
  uint64_t offset = 0, size = 0;
};

bool DecodeHandle(const char** p, const char* end, BlockHandle* h) {
  return GetVarint64(p, end, &h->offset) && GetVarint64(p, end, &h->size);
}

// Verifies the trailer of the block at `h` and returns its contents.
StatusOr<std::string_view> ReadBlock(const std::string& file, const BlockHandle& h,
                                     const std::string& what) {
  if (h.offset > file.size() || h.size > file.size() - h.offset ||
      file.size() - h.offset - h.size < kBlockTrailerSize) {
    return DataLoss(what + ": block at offset " + std::to_string(h.offset) + " size " +
                    std::to_string(h.size) + " lies outside the file (truncated index?)");
  }
  const char* data = file.data() + h.offset;
  const uint8_t type = static_cast<uint8_t>(data[h.size]);
  const uint32_t stored = DecodeFixed32(data + h.size + 1);
  const uint32_t actual = MaskCrc32c(Crc32c(Crc32c(0, data, h.size), data + h.size, 1));
  if (stored != actual) {
    return DataLoss(what + ": block checksum mismatch at offset " + std::to_string(h.offset));
  }
  if (type == 1) {
    return Unimplemented(what + ": snappy-compressed table blocks are not supported");
  }
  if (type != 0) return DataLoss(what + ": unknown block compression type " + std::to_string(type));
  return std::string_view(data, h.size);
}

// Calls fn(key, value) for each entry of a table block.
template <typename Fn>
Status ForEachBlockEntry(std::string_view block, const std::string& what, Fn&& fn) {
  if (block.size() < 4) return DataLoss(what + ": block too small");
  const uint32_t num_restarts = DecodeFixed32(block.data() + block.size() - 4);
  if (num_restarts > (block.size() - 4) / 4) return DataLoss(what + ": bad restart count");
  const char* p = block.data();
  const char* end = block.data() + block.size() - 4 - 4 * num_restarts;
  std::string key;
  while (p < end) {
    uint64_t shared, non_shared, value_len;
    if (!GetVarint64(&p, end, &shared) || !GetVarint64(&p, end, &non_shared) ||
        !GetVarint64(&p, end, &value_len) || shared > key.size() ||
        non_shared > static_cast<uint64_t>(end - p) ||
        value_len > static_cast<uint64_t>(end - p) - non_shared) {
      return DataLoss(what + ": corrupt block entry");
    }
    key.resize(shared);
    key.append(p, non_shared);
    p += non_shared;
    KILN_RETURN_IF_ERROR(fn(key, std::string_view(p, value_len)));
    p += value_len;
  }
  return Status::OK();
}

size_t TfDtypeSize(int dt) {
  switch (dt) {
    case tfpb::DT_UINT8:
    case tfpb::DT_INT8:
    case tfpb::DT_BOOL:
      return 1;
    case tfpb::DT_INT16:
    case tfpb::DT_UINT16:
    case tfpb::DT_HALF:
    case tfpb::DT_BFLOAT16:
      return 2;
    case tfpb::DT_FLOAT:
    case tfpb::DT_INT32:
    case tfpb::DT_UINT32:
      return 4;
    case tfpb::DT_DOUBLE:
    case tfpb::DT_INT64:
    case tfpb::DT_UINT64:
    case tfpb::DT_COMPLEX64:
      return 8;
    case tfpb::DT_COMPLEX128:
      return 16;
    default:
      return 0;
  }
}

}  // namespace

uint32_t Crc32c(uint32_t crc, const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

uint32_t MaskCrc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string BundleShardPath(const std::string& prefix, int shard, int num_shards) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), ".data-%05d-of-%05d", shard, num_shards);
  return prefix + buf;
}

StatusOr<TensorBundleReader> TensorBundleReader::Open(const std::string& prefix) {
  const std::string index_path = prefix + ".index";
  KILN_ASSIGN_OR_RETURN(std::string file, ReadWholeFile(index_path));
  if (file.size() < kFooterSize) {
    return DataLoss(index_path + ": file too short for a table footer (truncated?)");
  }
  const char* footer = file.data() + file.size() - kFooterSize;
  uint64_t magic;
  std::memcpy(&magic, footer + 40, 8);
  if (magic != kTableMagic) {
    return DataLoss(index_path + ": bad table magic number (not a checkpoint index, or truncated)");
  }
  BlockHandle metaindex, index;
  const char* p = footer;
  if (!DecodeHandle(&p, footer + 40, &metaindex) || !DecodeHandle(&p, footer + 40, &index)) {
    return DataLoss(index_path + ": corrupt table footer");
  }
  KILN_ASSIGN_OR_RETURN(std::string_view index_block, ReadBlock(file, index, index_path));
  TensorBundleReader r;
  r.prefix_ = prefix;
  bool have_header = false;
  KILN_RETURN_IF_ERROR(ForEachBlockEntry(
      index_block, index_path, [&](const std::string&, std::string_view handle) -> Status {
        BlockHandle h;
        const char* hp = handle.data();
        if (!DecodeHandle(&hp, handle.data() + handle.size(), &h)) {
          return DataLoss(index_path + ": corrupt block handle in index block");
        }
        KILN_ASSIGN_OR_RETURN(std::string_view block, ReadBlock(file, h, index_path));
        return ForEachBlockEntry(
            block, index_path, [&](const std::string& key, std::string_view value) -> Status {
              if (key.empty()) {
                if (!r.header_.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                  return DataLoss(index_path + ": corrupt BundleHeaderProto");
                }
                have_header = true;
                return Status::OK();
              }
              tfpb::BundleEntryProto e;
              if (!e.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
                return DataLoss(index_path + ": corrupt BundleEntryProto for '" + key + "'");
              }
              r.entries_[key] = std::move(e);
              return Status::OK();
            });
      }));
  if (!have_header) return DataLoss(index_path + ": no bundle header (empty key) in the index");
  if (r.header_.endianness() != tfpb::BundleHeaderProto::LITTLE) {
    return Unimplemented(index_path + ": big-endian tensor bundles are not supported");
  }
  const int n = r.header_.num_shards();
  if (n < 1) return DataLoss(index_path + ": header says " + std::to_string(n) + " shards");
  for (int s = 0; s < n; ++s) {
    const std::string shard = BundleShardPath(prefix, s, n);
    if (!std::filesystem::is_regular_file(shard)) {
      return NotFound("checkpoint data shard " + shard + " is missing (" + index_path + " names " +
                      std::to_string(n) + " shard(s))");
    }
  }
  for (const auto& [key, e] : r.entries_) {
    if (e.shard_id() < 0 || e.shard_id() >= n) {
      return DataLoss(index_path + ": tensor '" + key + "' names shard " +
                      std::to_string(e.shard_id()) + " of " + std::to_string(n));
    }
  }
  return r;
}

std::vector<std::string> TensorBundleReader::keys() const {
  std::vector<std::string> k;
  for (const auto& e : entries_) k.push_back(e.first);
  return k;
}

StatusOr<tfpb::BundleEntryProto> TensorBundleReader::Entry(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    return NotFound("checkpoint " + prefix_ + " has no tensor '" + key + "'");
  }
  return it->second;
}

StatusOr<tfpb::TensorProto> TensorBundleReader::ReadProto(const std::string& key) const {
  KILN_ASSIGN_OR_RETURN(tfpb::BundleEntryProto e, Entry(key));
  const std::string what = "checkpoint tensor '" + key + "'";
  if (e.slices_size() > 0) {
    return Unimplemented(what +
                         " is a sliced (partitioned) variable; sliced checkpoints are not "
                         "supported yet");
  }
  tfpb::TensorProto out;
  out.set_dtype(e.dtype());
  *out.mutable_tensor_shape() = e.shape();
  int64_t numel = 1;
  for (const auto& d : e.shape().dim()) {
    if (d.size() < 0) return DataLoss(what + ": negative dimension");
    if (d.size() > 0 && numel > (int64_t{1} << 48) / d.size()) return DataLoss(what + ": too big");
    numel *= d.size();
  }
  const std::string shard = BundleShardPath(prefix_, e.shard_id(), header_.num_shards());
  std::ifstream f(shard, std::ios::binary);
  if (!f) return NotFound("cannot open checkpoint data shard " + shard);
  f.seekg(0, std::ios::end);
  const int64_t file_size = static_cast<int64_t>(f.tellg());
  if (e.offset() < 0 || e.size() < 0 || e.offset() > file_size ||
      e.size() > file_size - e.offset()) {
    return DataLoss(what + ": bytes [" + std::to_string(e.offset()) + ", +" +
                    std::to_string(e.size()) + ") lie outside " + shard + " (" +
                    std::to_string(file_size) + " bytes; truncated shard?)");
  }
  std::string bytes(static_cast<size_t>(e.size()), '\0');
  f.seekg(e.offset());
  f.read(bytes.data(), e.size());
  if (!f) return DataLoss(what + ": read error in " + shard);
  const Status checksum_error = DataLoss(what + ": checksum (CRC32C) mismatch in " + shard +
                                         " - the checkpoint data is corrupted");
  if (e.dtype() == tfpb::DT_STRING) {
    // The checksum covers each length as a little-endian uint32 (uint64 when larger; not the
    // varint bytes), the stored (masked) length checksum, then the string bytes.
    const char* p = bytes.data();
    const char* end = p + bytes.size();
    if (static_cast<uint64_t>(numel) > bytes.size()) return DataLoss(what + ": truncated");
    std::vector<uint64_t> lens(static_cast<size_t>(numel));
    uint32_t crc = 0;
    for (auto& len : lens) {
      if (!GetVarint64(&p, end, &len)) return DataLoss(what + ": corrupt string lengths");
      if (len <= UINT32_MAX) {  // TF hashes lengths that fit as uint32 (compatibility)
        const uint32_t len32 = static_cast<uint32_t>(len);
        crc = Crc32c(crc, &len32, sizeof(len32));
      } else {
        crc = Crc32c(crc, &len, sizeof(len));
      }
    }
    if (end - p < 4) return DataLoss(what + ": truncated string tensor");
    const uint32_t length_checksum = DecodeFixed32(p);
    if (length_checksum != MaskCrc32c(crc)) return checksum_error;
    crc = Crc32c(crc, p, 4);
    p += 4;
    for (uint64_t len : lens) {
      if (len > static_cast<uint64_t>(end - p)) return DataLoss(what + ": truncated string data");
      out.add_string_val(p, len);
      crc = Crc32c(crc, p, len);
      p += len;
    }
    if (MaskCrc32c(crc) != e.crc32c()) return checksum_error;
    return out;
  }
  if (MaskCrc32c(Crc32c(0, bytes.data(), bytes.size())) != e.crc32c()) return checksum_error;
  const size_t esize = TfDtypeSize(e.dtype());
  if (esize == 0) {
    return Unimplemented(what + " has dtype " + TfDataTypeName(e.dtype()) +
                         ", which kiln cannot read");
  }
  if (bytes.size() != static_cast<size_t>(numel) * esize) {
    return DataLoss(what + ": " + std::to_string(bytes.size()) + " bytes stored, expected " +
                    std::to_string(numel * static_cast<int64_t>(esize)));
  }
  out.set_tensor_content(std::move(bytes));
  return out;
}

StatusOr<Tensor> TensorBundleReader::Read(const std::string& key) const {
  KILN_ASSIGN_OR_RETURN(tfpb::TensorProto proto, ReadProto(key));
  if (!DataTypeFromTf(proto.dtype())) {
    return Unimplemented("checkpoint tensor '" + key + "' has dtype " +
                         TfDataTypeName(proto.dtype()) + ", which kiln does not support");
  }
  return TensorFromTf(proto, "checkpoint tensor '" + key + "'");
}

}  // namespace kiln
