#include "io/npy/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <set>
#include <stdexcept>

namespace kiln {
namespace {

constexpr char kNpyMagic[] = "\x93NUMPY";
constexpr size_t kNpyMagicLen = 6;
// numpy cannot make arrays of more than 32 (1.x) or 64 (2.x) dimensions.
constexpr size_t kMaxNpyRank = 64;
// numpy itself refuses headers above 10000 bytes by default; allow more but stay bounded.
constexpr uint64_t kMaxNpyHeaderLen = 1 << 20;

constexpr bool kHostLittleEndian = std::endian::native == std::endian::little;

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '\'' || c == '\\') {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "'";
}

uint16_t LoadU16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(u[0] | (u[1] << 8));
}
uint32_t LoadU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) | (static_cast<uint32_t>(u[3]) << 24);
}
uint64_t LoadU64(const char* p) {
  return static_cast<uint64_t>(LoadU32(p)) | (static_cast<uint64_t>(LoadU32(p + 4)) << 32);
}
void PutU16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v & 0xff));
  s->push_back(static_cast<char>(v >> 8));
}
void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void ByteSwapInPlace(char* data, size_t elem_size, size_t count) {
  if (elem_size <= 1) return;
  for (size_t i = 0; i < count; ++i) std::reverse(data + i * elem_size, data + (i + 1) * elem_size);
}

// ----------------------------------------------------------------------------- npy header

struct NpyHeader {
  DataType dtype = DataType::kUndefined;
  bool swap = false;     // data byte order differs from the host's
  bool fortran = false;  // column-major data
  std::vector<int64_t> dims;
  uint64_t data_offset = 0;  // where the array data starts
  uint64_t nbytes = 0;       // bytes of array data
};

// A parser for the Python dict literal of a .npy header, e.g.
//   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderDictParser {
 public:
  HeaderDictParser(std::string_view s, const std::string& what) : s_(s), what_(what) {}

  Status Parse(std::string* descr, bool* fortran, std::vector<int64_t>* dims) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    SkipWs();
    if (!Consume('{')) return Error("expected '{' at the start of the header dict");
    SkipWs();
    while (!Consume('}')) {
      std::string key;
      KILN_RETURN_IF_ERROR(ParseString(&key, "a dict key"));
      SkipWs();
      if (!Consume(':')) return Error("expected ':' after key " + Quote(key));
      SkipWs();
      if (key == "descr") {
        if (have_descr) return Error("duplicate key 'descr'");
        have_descr = true;
        if (Peek() == '[') {
          return Unimplemented(what_ + ": structured (record) arrays are not supported");
        }
        KILN_RETURN_IF_ERROR(ParseString(descr, "the 'descr' value"));
      } else if (key == "fortran_order") {
        if (have_fortran) return Error("duplicate key 'fortran_order'");
        have_fortran = true;
        KILN_RETURN_IF_ERROR(ParseBool(fortran));
      } else if (key == "shape") {
        if (have_shape) return Error("duplicate key 'shape'");
        have_shape = true;
        KILN_RETURN_IF_ERROR(ParseShape(dims));
      } else {
        return Error("unexpected key " + Quote(key) +
                     " (expected 'descr', 'fortran_order' and 'shape')");
      }
      SkipWs();
      if (Consume(',')) {
        SkipWs();
      } else if (Peek() != '}') {
        return Error("expected ',' or '}' after the value of " + Quote(key));
      }
    }
    SkipWs();
    if (i_ != s_.size()) return Error("unexpected characters after the header dict");
    if (!have_descr) return Error("missing key 'descr'");
    if (!have_fortran) return Error("missing key 'fortran_order'");
    if (!have_shape) return Error("missing key 'shape'");
    return Status::OK();
  }

 private:
  Status Error(const std::string& msg) const {
    return InvalidArgument(what_ + ": malformed .npy header: " + msg + " at offset " +
                           std::to_string(i_) + " of header " + Quote(s_.substr(0, 200)));
  }
  char Peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool Consume(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  bool ConsumeWord(std::string_view w) {
    if (s_.substr(i_, w.size()) == w) {
      i_ += w.size();
      return true;
    }
    return false;
  }
  void SkipWs() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  Status ParseString(std::string* out, const char* what) {
    char q = Peek();
    if (q != '\'' && q != '"') return Error(std::string("expected a quoted string for ") + what);
    ++i_;
    out->clear();
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\') return Error("escape sequences are not supported in strings");
      if (out->size() >= 64) return Error(std::string("string too long for ") + what);
      out->push_back(s_[i_++]);
    }
    if (!Consume(q)) return Error("unterminated string");
    return Status::OK();
  }
  Status ParseBool(bool* out) {
    if (ConsumeWord("True")) {
      *out = true;
    } else if (ConsumeWord("False")) {
      *out = false;
    } else {
      return Error("expected True or False for 'fortran_order'");
    }
    return Status::OK();
  }
  Status ParseShape(std::vector<int64_t>* dims) {
    dims->clear();
    if (!Consume('(')) return Error("expected a tuple for 'shape'");
    SkipWs();
    bool trailing_comma = false;
    while (!Consume(')')) {
      if (dims->size() >= kMaxNpyRank) {
        return Error("shape has more than " + std::to_string(kMaxNpyRank) + " dimensions");
      }
      if (Peek() == '-') return Error("negative dimension in 'shape'");
      if (Peek() == '+') ++i_;
      if (Peek() < '0' || Peek() > '9') return Error("expected an integer in 'shape'");
      uint64_t v = 0;
      while (Peek() >= '0' && Peek() <= '9') {
        uint64_t digit = static_cast<uint64_t>(Peek() - '0');
        if (v > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - digit) / 10) {
          return Error("dimension in 'shape' does not fit in int64");
        }
        v = v * 10 + digit;
        ++i_;
      }
      if (Peek() == 'L' || Peek() == 'l') ++i_;  // Python 2 long literal (old numpy files)
      dims->push_back(static_cast<int64_t>(v));
      SkipWs();
      trailing_comma = Consume(',');
      SkipWs();
      if (!trailing_comma && Peek() != ')') return Error("expected ',' or ')' in 'shape'");
    }
    // "(3)" is the integer 3 in Python, not a tuple: numpy rejects it, so do we.
    if (dims->size() == 1 && !trailing_comma) return Error("'shape' (n) is not a tuple; use (n,)");
    return Status::OK();
  }

  std::string_view s_;
  const std::string& what_;
  size_t i_ = 0;
};

Status ParseDescr(const std::string& descr, const std::string& what, DataType* dtype, bool* swap) {
  if (descr.empty()) return InvalidArgument(what + ": empty 'descr' in .npy header");
  char order = descr[0];
  std::string_view code(descr);
  bool little;
  if (order == '<') {
    little = true;
    code.remove_prefix(1);
  } else if (order == '>') {
    little = false;
    code.remove_prefix(1);
  } else if (order == '|' || order == '=') {
    little = kHostLittleEndian;
    code.remove_prefix(1);
  } else {
    little = kHostLittleEndian;  // no byte-order character: native
  }
  static const std::pair<const char*, DataType> kCodes[] = {
      {"f2", DataType::kFloat16}, {"f4", DataType::kFloat32}, {"f8", DataType::kFloat64},
      {"i1", DataType::kInt8},    {"i2", DataType::kInt16},   {"i4", DataType::kInt32},
      {"i8", DataType::kInt64},   {"u1", DataType::kUInt8},   {"u2", DataType::kUInt16},
      {"u4", DataType::kUInt32},  {"u8", DataType::kUInt64},  {"b1", DataType::kBool},
  };
  for (const auto& [c, t] : kCodes) {
    if (code == c) {
      *dtype = t;
      *swap = DataTypeSize(t) > 1 && little != kHostLittleEndian;
      return Status::OK();
    }
  }
  std::string msg = what + ": unsupported .npy dtype " + Quote(descr);
  if (code == "V2") {
    return Unimplemented(msg +
                         " (an opaque 2-byte type, e.g. ml_dtypes bfloat16, which numpy "
                         "cannot describe; save it as float32)");
  }
  if (!code.empty() && std::string_view("cUSOVMmf").find(code[0]) != std::string_view::npos) {
    return Unimplemented(msg + " (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)");
  }
  return InvalidArgument(msg + " (supported: f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1)");
}

// Parses the header from `prefix` (the start of a .npy file whose total size is `total_size`).
// If `prefix` is too short to hold the whole header, sets *need to the bytes required and
// returns OK with header->dtype undefined.
Status ParseNpyHeader(std::string_view prefix, uint64_t total_size, const std::string& what,
                      NpyHeader* header, uint64_t* need) {
  *need = 0;
  size_t magic_have = std::min<size_t>(prefix.size(), kNpyMagicLen);
  if (magic_have > 0 && std::memcmp(prefix.data(), kNpyMagic, magic_have) != 0) {
    return InvalidArgument(what + ": not a .npy file (bad magic; expected \\x93NUMPY)");
  }
  if (total_size < 10) {
    return DataLoss(what + ": truncated .npy file (" + std::to_string(total_size) +
                    " bytes, too short for the header)");
  }
  if (prefix.size() < 12 && prefix.size() < total_size) {
    *need = std::min<uint64_t>(12, total_size);
    return Status::OK();
  }
  unsigned major = static_cast<unsigned char>(prefix[6]);
  unsigned minor = static_cast<unsigned char>(prefix[7]);
  if (major < 1 || major > 3 || minor != 0) {
    return Unimplemented(what + ": unsupported .npy format version " + std::to_string(major) + "." +
                         std::to_string(minor) + " (supported: 1.0, 2.0, 3.0)");
  }
  uint64_t header_start = major == 1 ? 10 : 12;
  if (total_size < header_start) {
    return DataLoss(what + ": truncated .npy file (" + std::to_string(total_size) + " bytes)");
  }
  uint64_t header_len = major == 1 ? LoadU16(prefix.data() + 8) : LoadU32(prefix.data() + 8);
  if (header_len > kMaxNpyHeaderLen) {
    return InvalidArgument(what + ": .npy header length " + std::to_string(header_len) +
                           " is implausibly large");
  }
  uint64_t data_offset = header_start + header_len;
  if (data_offset > total_size) {
    return DataLoss(what + ": truncated .npy file: header of " + std::to_string(header_len) +
                    " bytes extends past the end of the " + std::to_string(total_size) +
                    "-byte file");
  }
  if (prefix.size() < data_offset) {
    *need = data_offset;
    return Status::OK();
  }
  std::string_view text = prefix.substr(header_start, header_len);
  std::string descr;
  HeaderDictParser parser(text, what);
  KILN_RETURN_IF_ERROR(parser.Parse(&descr, &header->fortran, &header->dims));
  KILN_RETURN_IF_ERROR(ParseDescr(descr, what, &header->dtype, &header->swap));

  auto n = CheckedNumElements(header->dims);
  if (!n.ok()) {
    return InvalidArgument(what + ": bad .npy shape " + DimsToString(header->dims) + ": " +
                           n.status().message());
  }
  uint64_t elem = DataTypeSize(header->dtype);
  uint64_t count = static_cast<uint64_t>(*n);
  if (count > std::numeric_limits<uint64_t>::max() / elem) {
    return InvalidArgument(what + ": .npy shape " + DimsToString(header->dims) + " is too large");
  }
  header->nbytes = count * elem;
  header->data_offset = data_offset;
  uint64_t available = total_size - data_offset;
  if (available < header->nbytes) {
    return DataLoss(what + ": truncated .npy file: shape " + DimsToString(header->dims) + " of " +
                    descr + " needs " + std::to_string(header->nbytes) +
                    " bytes of data, but only " + std::to_string(available) + " follow the header");
  }
  if (available > header->nbytes) {
    return InvalidArgument(what + ": .npy file has " + std::to_string(available - header->nbytes) +
                           " unexpected bytes after the " + std::to_string(header->nbytes) +
                           " bytes of data for shape " + DimsToString(header->dims));
  }
  return Status::OK();
}

// Turns raw file-order data already copied into `t` into a proper C-order, host-order tensor.
void FinishNpyData(const NpyHeader& h, Tensor* t) {
  size_t elem = DataTypeSize(h.dtype);
  size_t n = static_cast<size_t>(t->num_elements());
  char* data = static_cast<char*>(t->raw_mutable_data());
  if (h.swap) ByteSwapInPlace(data, elem, n);
  if (h.dtype == DataType::kBool) {
    // A C++ bool must hold exactly 0 or 1.
    auto* b = reinterpret_cast<unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) b[i] = b[i] != 0;
  }
  if (h.fortran && t->rank() > 1 && n > 0) {
    const std::vector<int64_t>& d = h.dims;
    int r = static_cast<int>(d.size());
    std::vector<char> src(data, data + n * elem);
    std::vector<int64_t> cstride(r, 1);
    for (int k = r - 2; k >= 0; --k) cstride[k] = cstride[k + 1] * d[k + 1];
    std::vector<int64_t> idx(r, 0);
    int64_t coff = 0;
    for (size_t f = 0; f < n; ++f) {
      std::memcpy(data + static_cast<size_t>(coff) * elem, src.data() + f * elem, elem);
      for (int k = 0; k < r; ++k) {  // advance the Fortran-order index (first dim fastest)
        ++idx[k];
        coff += cstride[k];
        if (idx[k] < d[k]) break;
        coff -= cstride[k] * d[k];
        idx[k] = 0;
      }
    }
  }
}

StatusOr<Tensor> CreateForHeader(const NpyHeader& h, const std::string& what) {
  auto t = Tensor::Create(h.dtype, h.dims);
  if (!t.ok()) return t.status().WithContext(what);
  return t;
}

// ----------------------------------------------------------------------------- npy writing

Status CheckWritable(const Tensor& t, const std::string& what) {
  if (!t.defined()) return InvalidArgument(what + ": cannot write an undefined tensor as .npy");
  if (t.dtype() == DataType::kString) {
    return Unimplemented(what + ": writing string tensors as .npy is not supported");
  }
  if (t.dtype() == DataType::kBFloat16) {
    return InvalidArgument(what + ": .npy has no bfloat16 dtype; cast the tensor to float32");
  }
  return Status::OK();
}

const char* NpyDescr(DataType t) {
  switch (t) {
    case DataType::kFloat16:
      return "<f2";
    case DataType::kFloat32:
      return "<f4";
    case DataType::kFloat64:
      return "<f8";
    case DataType::kInt8:
      return "|i1";
    case DataType::kInt16:
      return "<i2";
    case DataType::kInt32:
      return "<i4";
    case DataType::kInt64:
      return "<i8";
    case DataType::kUInt8:
      return "|u1";
    case DataType::kUInt16:
      return "<u2";
    case DataType::kUInt32:
      return "<u4";
    case DataType::kUInt64:
      return "<u8";
    case DataType::kBool:
      return "|b1";
    default:
      return nullptr;
  }
}

// The magic, version, length and padded header dict; the data follows it.
std::string NpyHeaderBytes(const Tensor& t) {
  std::string shape = "(";
  for (int i = 0; i < t.rank(); ++i) {
    if (i) shape += ", ";
    shape += std::to_string(t.dim(i));
  }
  if (t.rank() == 1) shape += ",";
  shape += ")";
  std::string dict = std::string("{'descr': '") + NpyDescr(t.dtype()) +
                     "', 'fortran_order': False, 'shape': " + shape + ", }";
  for (int major : {1, 2}) {
    size_t prefix = major == 1 ? 10 : 12;
    size_t total = prefix + dict.size() + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t header_len = dict.size() + pad + 1;
    if (major == 1 && header_len > 0xffff) continue;
    std::string out(kNpyMagic, kNpyMagicLen);
    out.push_back(static_cast<char>(major));
    out.push_back(0);
    if (major == 1) {
      PutU16(&out, static_cast<uint16_t>(header_len));
    } else {
      PutU32(&out, static_cast<uint32_t>(header_len));
    }
    out += dict;
    out.append(pad, ' ');
    out.push_back('\n');
    return out;
  }
  return {};  // unreachable: rank is bounded far below 4 GiB of header
}

// Calls sink(data, size) with the tensor's data in little-endian order, in chunks.
Status EmitLittleEndianData(const Tensor& t,
                            const std::function<Status(const char*, size_t)>& sink) {
  const char* data = static_cast<const char*>(t.raw_data());
  size_t nbytes = t.nbytes();
  size_t elem = DataTypeSize(t.dtype());
  if (kHostLittleEndian || elem == 1) {
    return nbytes == 0 ? Status::OK() : sink(data, nbytes);
  }
  constexpr size_t kChunk = 1 << 20;
  std::vector<char> buf;
  for (size_t off = 0; off < nbytes; off += kChunk) {
    size_t len = std::min(kChunk, nbytes - off);
    buf.assign(data + off, data + off + len);
    ByteSwapInPlace(buf.data(), elem, len / elem);
    KILN_RETURN_IF_ERROR(sink(buf.data(), len));
  }
  return Status::OK();
}

// ----------------------------------------------------------------------------- files

std::string ErrnoText() { return std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

Status OpenForRead(const std::string& path, int* fd, uint64_t* size) {
  int f = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f < 0) {
    if (errno == ENOENT) return NotFound(path + ": no such file");
    return InvalidArgument(path + ": cannot open: " + ErrnoText());
  }
  struct stat st;
  if (::fstat(f, &st) != 0) {
    Status s = InvalidArgument(path + ": cannot stat: " + ErrnoText());
    ::close(f);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(f);
    return InvalidArgument(path + ": not a regular file");
  }
  *fd = f;
  *size = static_cast<uint64_t>(st.st_size);
  return Status::OK();
}

Status PreadFully(int fd, char* buf, size_t len, uint64_t offset, const std::string& path) {
  while (len > 0) {
    ssize_t r = ::pread(fd, buf, len, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return DataLoss(path + ": read error: " + ErrnoText());
    }
    if (r == 0) return DataLoss(path + ": file shrank while being read");
    buf += r;
    len -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

Status WriteFully(int fd, const char* buf, size_t len, const std::string& path) {
  while (len > 0) {
    ssize_t r = ::write(fd, buf, len);
    if (r < 0) {
      if (errno == EINTR) continue;
      return InvalidArgument(path + ": write error: " + ErrnoText());
    }
    buf += r;
    len -= static_cast<size_t>(r);
  }
  return Status::OK();
}

Status PwriteFully(int fd, const char* buf, size_t len, uint64_t offset, const std::string& path) {
  while (len > 0) {
    ssize_t r = ::pwrite(fd, buf, len, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return InvalidArgument(path + ": write error: " + ErrnoText());
    }
    buf += r;
    len -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

// Writes via `path.tmp.<pid>`, then renames over `path`. `body` writes to the open descriptor
// (which it may also pwrite to).
Status WriteAtomically(const std::string& path, const std::function<Status(int fd)>& body) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int f = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f < 0) return InvalidArgument(path + ": cannot create " + tmp + ": " + ErrnoText());
  Fd fd(f);
  Status s = body(fd.get());
  if (s.ok() && ::fsync(fd.get()) != 0) s = InvalidArgument(tmp + ": fsync failed: " + ErrnoText());
  if (s.ok() && ::close(fd.release()) != 0) {
    s = InvalidArgument(tmp + ": close failed: " + ErrnoText());
  }
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = InvalidArgument(path + ": cannot rename " + tmp + " into place: " + ErrnoText());
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  int f;
  uint64_t size;
  KILN_RETURN_IF_ERROR(OpenForRead(path, &f, &size));
  Fd fd(f);
  std::string bytes;
  try {
    bytes.resize(static_cast<size_t>(size));
  } catch (const std::exception&) {
    return ResourceExhausted(path + ": out of memory reading " + std::to_string(size) + " bytes");
  }
  KILN_RETURN_IF_ERROR(PreadFully(fd.get(), bytes.data(), bytes.size(), 0, path));
  return bytes;
}

// ----------------------------------------------------------------------------- zip

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr size_t kEndSize = 22;
constexpr size_t kZip64EndSize = 56;
constexpr size_t kZip64LocatorSize = 20;
constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kMethodDeflate = 8;
constexpr uint16_t kFlagEncrypted = 1 << 0;
constexpr uint16_t kFlagStrongEncryption = 1 << 6;
constexpr uint16_t kFlagUtf8 = 1 << 11;
// Deflate cannot expand more than ~1032:1.
constexpr uint64_t kMaxDeflateRatio = 1032;

// Member names are only used as tensor names, but callers may well use them as file names:
// refuse anything path-like.
Status CheckMemberName(const std::string& name, const std::string& what) {
  if (name.empty()) return InvalidArgument(what + ": empty member name");
  if (name.size() > 4096) return InvalidArgument(what + ": member name too long");
  if (name[0] == '/' || name.find('\\') != std::string::npos ||
      name.find('\0') != std::string::npos) {
    return InvalidArgument(what + ": unsafe member name " + Quote(name));
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (name.compare(start, end - start, "..") == 0 && end - start == 2) {
      return InvalidArgument(what + ": unsafe member name " + Quote(name) +
                             " (contains a '..' component)");
    }
    start = end + 1;
  }
  return Status::OK();
}

struct ZipEntry {
  std::string name;
  uint16_t flags = 0;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t csize = 0;
  uint64_t usize = 0;
  uint64_t local_offset = 0;
  uint64_t data_offset = 0;  // filled from the local header
};

Status Inflate(std::string_view in, uint64_t usize, const std::string& what, std::string* out) {
  try {
    out->resize(static_cast<size_t>(usize));
  } catch (const std::exception&) {
    return ResourceExhausted(what + ": out of memory inflating " + std::to_string(usize) +
                             " bytes");
  }
  z_stream zs;
  std::memset(&zs, 0, sizeof(zs));
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return Internal(what + ": inflateInit2 failed");
  size_t in_pos = 0, out_pos = 0;
  int rc = Z_OK;
  constexpr size_t kStep = 1u << 30;  // z_stream counts are 32-bit
  while (true) {
    size_t in_len = std::min(kStep, in.size() - in_pos);
    size_t out_len = std::min(kStep, out->size() - out_pos);
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + in_pos));
    zs.avail_in = static_cast<uInt>(in_len);
    // Give zlib a 1-byte scratch when the output is full so it can report excess data.
    unsigned char scratch;
    bool full = out_len == 0;
    zs.next_out = full ? &scratch : reinterpret_cast<Bytef*>(out->data() + out_pos);
    zs.avail_out = full ? 1 : static_cast<uInt>(out_len);
    rc = inflate(&zs, Z_NO_FLUSH);
    size_t consumed = in_len - zs.avail_in;
    size_t produced = (full ? 1 : out_len) - zs.avail_out;
    in_pos += consumed;
    if (full && produced > 0) {
      inflateEnd(&zs);
      return DataLoss(what + ": deflated data is larger than the recorded size of " +
                      std::to_string(usize) + " bytes");
    }
    if (!full) out_pos += produced;
    if (rc == Z_STREAM_END) break;
    if (rc != Z_OK && rc != Z_BUF_ERROR) {
      std::string msg = zs.msg ? zs.msg : "error " + std::to_string(rc);
      inflateEnd(&zs);
      return DataLoss(what + ": corrupt deflate data: " + msg);
    }
    if (consumed == 0 && produced == 0) {
      inflateEnd(&zs);
      if (in_pos >= in.size()) return DataLoss(what + ": truncated deflate data");
      return DataLoss(what + ": deflated data is larger than the recorded size of " +
                      std::to_string(usize) + " bytes");
    }
  }
  inflateEnd(&zs);
  if (out_pos != usize) {
    return DataLoss(what + ": inflated to " + std::to_string(out_pos) +
                    " bytes, but the zip directory records " + std::to_string(usize));
  }
  return Status::OK();
}

uint32_t Crc32(uint32_t crc, const char* data, size_t len) {
  while (len > 0) {
    size_t n = std::min<size_t>(len, 1u << 30);
    crc = static_cast<uint32_t>(
        crc32(crc, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(n)));
    data += n;
    len -= n;
  }
  return crc;
}

// Reads the zip directory, checking every header against `size`.
Status ReadZipDirectory(std::string_view b, const std::string& what,
                        std::vector<ZipEntry>* entries) {
  const uint64_t size = b.size();
  if (size < kEndSize) {
    if (size >= 4 && LoadU32(b.data()) == kLocalSig) {
      return DataLoss(what + ": truncated zip archive");
    }
    return InvalidArgument(what + ": not a zip (.npz) archive: too short");
  }
  // The end record is the last thing in the file, followed only by a comment of < 64 KiB.
  uint64_t end_pos = 0;
  bool found = false;
  uint64_t lowest = size - kEndSize > 0xffff ? size - kEndSize - 0xffff : 0;
  for (uint64_t p = size - kEndSize + 1; p-- > lowest;) {
    if (LoadU32(b.data() + p) == kEndSig && p + kEndSize + LoadU16(b.data() + p + 20) <= size) {
      end_pos = p;
      found = true;
      break;
    }
  }
  if (!found) {
    if (LoadU32(b.data()) == kLocalSig) {
      return DataLoss(what +
                      ": truncated or corrupt zip archive: no end-of-central-directory "
                      "record");
    }
    return InvalidArgument(what +
                           ": not a zip (.npz) archive: no end-of-central-directory "
                           "record");
  }
  const char* e = b.data() + end_pos;
  uint64_t disk = LoadU16(e + 4), cd_disk = LoadU16(e + 6);
  uint64_t count_disk = LoadU16(e + 8), count = LoadU16(e + 10);
  uint64_t cd_size = LoadU32(e + 12), cd_offset = LoadU32(e + 16);
  uint64_t cd_limit = end_pos;  // the central directory ends before this
  if (count == 0xffff || count_disk == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    if (end_pos >= kZip64LocatorSize &&
        LoadU32(b.data() + end_pos - kZip64LocatorSize) == kZip64LocatorSig) {
      const char* loc = b.data() + end_pos - kZip64LocatorSize;
      uint64_t z64_pos = LoadU64(loc + 8);
      if (LoadU32(loc + 16) > 1) return Unimplemented(what + ": multi-disk zip archives");
      if (z64_pos > end_pos - kZip64LocatorSize ||
          end_pos - kZip64LocatorSize - z64_pos < kZip64EndSize) {
        return DataLoss(what + ": zip64 end record offset out of bounds");
      }
      const char* z = b.data() + z64_pos;
      if (LoadU32(z) != kZip64EndSig) return DataLoss(what + ": bad zip64 end record signature");
      disk = LoadU32(z + 16);
      cd_disk = LoadU32(z + 20);
      count_disk = LoadU64(z + 24);
      count = LoadU64(z + 32);
      cd_size = LoadU64(z + 40);
      cd_offset = LoadU64(z + 48);
      cd_limit = z64_pos;
    }
  }
  if (disk != 0 || cd_disk != 0 || count_disk != count) {
    return Unimplemented(what + ": multi-disk (split) zip archives are not supported");
  }
  if (cd_offset > cd_limit || cd_size > cd_limit - cd_offset) {
    return DataLoss(what + ": zip central directory (offset " + std::to_string(cd_offset) +
                    ", size " + std::to_string(cd_size) + ") lies outside the archive");
  }
  if (count > cd_size / kCentralHeaderSize) {
    return DataLoss(what + ": zip central directory of " + std::to_string(cd_size) +
                    " bytes cannot hold " + std::to_string(count) + " entries");
  }
  entries->clear();
  entries->reserve(static_cast<size_t>(count));
  uint64_t p = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    std::string where = what + ": zip entry " + std::to_string(i);
    if (cd_end - p < kCentralHeaderSize) return DataLoss(where + ": central directory truncated");
    const char* c = b.data() + p;
    if (LoadU32(c) != kCentralSig) return DataLoss(where + ": bad central directory signature");
    ZipEntry ent;
    ent.flags = LoadU16(c + 8);
    ent.method = LoadU16(c + 10);
    ent.crc = LoadU32(c + 16);
    ent.csize = LoadU32(c + 20);
    ent.usize = LoadU32(c + 24);
    uint64_t name_len = LoadU16(c + 28), extra_len = LoadU16(c + 30);
    uint64_t comment_len = LoadU16(c + 32);
    uint64_t start_disk = LoadU16(c + 34);
    ent.local_offset = LoadU32(c + 42);
    uint64_t var_len = name_len + extra_len + comment_len;
    if (cd_end - p - kCentralHeaderSize < var_len) {
      return DataLoss(where + ": central directory entry extends past the directory");
    }
    ent.name.assign(c + kCentralHeaderSize, name_len);
    where = what + ": member " + Quote(ent.name);
    // Zip64 extended information: the 64-bit values of the fields that are saturated.
    const char* x = c + kCentralHeaderSize + name_len;
    const char* x_end = x + extra_len;
    while (x_end - x >= 4) {
      uint16_t id = LoadU16(x), len = LoadU16(x + 2);
      if (static_cast<uint64_t>(x_end - x - 4) < len) {
        return DataLoss(where + ": extra field extends past its entry");
      }
      if (id == 0x0001) {
        const char* f = x + 4;
        const char* f_end = f + len;
        auto take = [&](uint64_t* v) -> Status {
          if (f_end - f < 8) return DataLoss(where + ": zip64 extra field too short");
          *v = LoadU64(f);
          f += 8;
          return Status::OK();
        };
        if (ent.usize == 0xffffffff) KILN_RETURN_IF_ERROR(take(&ent.usize));
        if (ent.csize == 0xffffffff) KILN_RETURN_IF_ERROR(take(&ent.csize));
        if (ent.local_offset == 0xffffffff) KILN_RETURN_IF_ERROR(take(&ent.local_offset));
        if (start_disk == 0xffff) {
          if (f_end - f < 4) return DataLoss(where + ": zip64 extra field too short");
          start_disk = LoadU32(f);
        }
      }
      x += 4 + len;
    }
    if (start_disk != 0) return Unimplemented(where + ": multi-disk zip archives");
    p += kCentralHeaderSize + var_len;

    if (ent.flags & (kFlagEncrypted | kFlagStrongEncryption)) {
      return Unimplemented(where + ": encrypted zip members are not supported");
    }
    if (ent.method != kMethodStored && ent.method != kMethodDeflate) {
      return Unimplemented(where + ": unsupported zip compression method " +
                           std::to_string(ent.method) + " (supported: stored, deflate)");
    }
    // Local header: only its variable lengths matter; sizes and CRC come from the central
    // directory (a local header may defer them to a data descriptor, flag bit 3).
    if (ent.local_offset > cd_offset || cd_offset - ent.local_offset < kLocalHeaderSize) {
      return DataLoss(where + ": local header offset " + std::to_string(ent.local_offset) +
                      " out of bounds");
    }
    const char* l = b.data() + ent.local_offset;
    if (LoadU32(l) != kLocalSig) return DataLoss(where + ": bad local header signature");
    uint64_t l_name_len = LoadU16(l + 26), l_extra_len = LoadU16(l + 28);
    uint64_t room = cd_offset - ent.local_offset - kLocalHeaderSize;
    if (l_name_len + l_extra_len > room) {
      return DataLoss(where + ": local header extends past the member data area");
    }
    if (std::string_view(l + kLocalHeaderSize, l_name_len) != ent.name) {
      return DataLoss(where + ": local header names a different member");
    }
    if ((LoadU16(l + 6) & (kFlagEncrypted | kFlagStrongEncryption)) != 0) {
      return Unimplemented(where + ": encrypted zip members are not supported");
    }
    room -= l_name_len + l_extra_len;
    ent.data_offset = ent.local_offset + kLocalHeaderSize + l_name_len + l_extra_len;
    if (ent.csize > room) {
      return DataLoss(where + ": compressed data (" + std::to_string(ent.csize) +
                      " bytes) extends past the member data area");
    }
    if (ent.method == kMethodStored && ent.csize != ent.usize) {
      return DataLoss(where + ": stored member has compressed size " + std::to_string(ent.csize) +
                      " != uncompressed size " + std::to_string(ent.usize));
    }
    if (ent.method == kMethodDeflate && ent.usize > ent.csize * kMaxDeflateRatio + 1024) {
      return DataLoss(where + ": uncompressed size " + std::to_string(ent.usize) +
                      " is impossible for " + std::to_string(ent.csize) + " bytes of deflate data");
    }
    entries->push_back(std::move(ent));
  }
  // Members must not overlap (overlapping members are a zip-bomb technique).
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const ZipEntry& ent : *entries) {
    ranges.emplace_back(ent.local_offset, ent.data_offset + ent.csize);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    if (ranges[i].first < ranges[i - 1].second) {
      return DataLoss(what + ": zip members overlap");
    }
  }
  return Status::OK();
}

// Writes a zip archive member by member to a file descriptor.
class ZipWriter {
 public:
  ZipWriter(int fd, const std::string& path) : fd_(fd), path_(path) {}

  Status AddNpy(const std::string& name, const Tensor& t, bool compress) {
    const std::string member = name + ".npy";
    std::string header = NpyHeaderBytes(t);
    uint64_t usize = header.size() + t.nbytes();
    // Zip64 in the local header when a size might not fit 32 bits (deflate can expand
    // incompressible data slightly).
    bool zip64 = usize + (compress ? usize / 1000 + 1024 : 0) >= 0xffffffffull;
    uint16_t flags = NeedsUtf8(member) ? kFlagUtf8 : 0;
    uint16_t method = compress ? kMethodDeflate : kMethodStored;

    Entry ent;
    ent.name = member;
    ent.flags = flags;
    ent.method = method;
    ent.local_offset = offset_;
    ent.usize = usize;
    // Placeholder local header (sizes and CRC patched once known).
    std::string local = LocalHeader(ent, zip64);
    KILN_RETURN_IF_ERROR(Write(local));

    uint32_t crc = Crc32(0, header.data(), header.size());
    uint64_t csize = 0;
    if (!compress) {
      KILN_RETURN_IF_ERROR(Write(header));
      KILN_RETURN_IF_ERROR(EmitLittleEndianData(t, [&](const char* d, size_t n) {
        crc = Crc32(crc, d, n);
        return WriteRaw(d, n);
      }));
      csize = usize;
    } else {
      z_stream zs;
      std::memset(&zs, 0, sizeof(zs));
      if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
          Z_OK) {
        return Internal(path_ + ": deflateInit2 failed");
      }
      std::vector<char> out(1 << 16);
      auto feed = [&](const char* d, size_t n, int flush) -> Status {
        do {
          size_t step = std::min<size_t>(n, 1u << 30);
          zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(d));
          zs.avail_in = static_cast<uInt>(step);
          int mode = step == n ? flush : Z_NO_FLUSH;
          int rc;
          do {
            zs.next_out = reinterpret_cast<Bytef*>(out.data());
            zs.avail_out = static_cast<uInt>(out.size());
            rc = deflate(&zs, mode);
            if (rc == Z_STREAM_ERROR) return Internal(path_ + ": deflate failed");
            size_t have = out.size() - zs.avail_out;
            csize += have;
            KILN_RETURN_IF_ERROR(WriteRaw(out.data(), have));
          } while (zs.avail_out == 0 || (mode == Z_FINISH && rc != Z_STREAM_END));
          d += step;
          n -= step;
        } while (n > 0);
        return Status::OK();
      };
      Status s = feed(header.data(), header.size(), Z_NO_FLUSH);
      if (s.ok()) {
        s = EmitLittleEndianData(t, [&](const char* d, size_t n) {
          crc = Crc32(crc, d, n);
          return feed(d, n, Z_NO_FLUSH);
        });
      }
      if (s.ok()) s = feed("", 0, Z_FINISH);
      deflateEnd(&zs);
      KILN_RETURN_IF_ERROR(s);
      if (!zip64 && csize >= 0xffffffffull) {
        return Internal(path_ + ": deflate output exceeded its bound");
      }
    }
    ent.crc = crc;
    ent.csize = csize;
    local = LocalHeader(ent, zip64);
    KILN_RETURN_IF_ERROR(PwriteFully(fd_, local.data(), local.size(), ent.local_offset, path_));
    entries_.push_back(std::move(ent));
    return Status::OK();
  }

  Status Finish() {
    uint64_t cd_offset = offset_;
    std::string cd;
    for (const Entry& e : entries_) {
      std::string extra;
      bool big_u = e.usize >= 0xffffffffull, big_c = e.csize >= 0xffffffffull;
      bool big_o = e.local_offset >= 0xffffffffull;
      if (big_u) PutU64(&extra, e.usize);
      if (big_c) PutU64(&extra, e.csize);
      if (big_o) PutU64(&extra, e.local_offset);
      bool zip64 = !extra.empty();
      PutU32(&cd, kCentralSig);
      PutU16(&cd, zip64 ? 45 : 20);  // version made by (MS-DOS attributes)
      PutU16(&cd, zip64 ? 45 : 20);  // version needed
      PutU16(&cd, e.flags);
      PutU16(&cd, e.method);
      PutU16(&cd, 0);       // time 00:00:00
      PutU16(&cd, 0x0021);  // date 1980-01-01
      PutU32(&cd, e.crc);
      PutU32(&cd, big_c ? 0xffffffffu : static_cast<uint32_t>(e.csize));
      PutU32(&cd, big_u ? 0xffffffffu : static_cast<uint32_t>(e.usize));
      PutU16(&cd, static_cast<uint16_t>(e.name.size()));
      PutU16(&cd, static_cast<uint16_t>(zip64 ? extra.size() + 4 : 0));
      PutU16(&cd, 0);  // comment
      PutU16(&cd, 0);  // disk
      PutU16(&cd, 0);  // internal attributes
      PutU32(&cd, 0);  // external attributes
      PutU32(&cd, big_o ? 0xffffffffu : static_cast<uint32_t>(e.local_offset));
      cd += e.name;
      if (zip64) {
        PutU16(&cd, 0x0001);
        PutU16(&cd, static_cast<uint16_t>(extra.size()));
        cd += extra;
      }
    }
    KILN_RETURN_IF_ERROR(Write(cd));
    uint64_t cd_size = cd.size();
    uint64_t count = entries_.size();
    std::string end;
    if (count >= 0xffff || cd_size >= 0xffffffffull || cd_offset >= 0xffffffffull) {
      uint64_t z64_pos = offset_;
      PutU32(&end, kZip64EndSig);
      PutU64(&end, kZip64EndSize - 12);
      PutU16(&end, 45);
      PutU16(&end, 45);
      PutU32(&end, 0);
      PutU32(&end, 0);
      PutU64(&end, count);
      PutU64(&end, count);
      PutU64(&end, cd_size);
      PutU64(&end, cd_offset);
      PutU32(&end, kZip64LocatorSig);
      PutU32(&end, 0);
      PutU64(&end, z64_pos);
      PutU32(&end, 1);
    }
    PutU32(&end, kEndSig);
    PutU16(&end, 0);
    PutU16(&end, 0);
    uint16_t c16 = count >= 0xffff ? 0xffff : static_cast<uint16_t>(count);
    PutU16(&end, c16);
    PutU16(&end, c16);
    PutU32(&end, cd_size >= 0xffffffffull ? 0xffffffffu : static_cast<uint32_t>(cd_size));
    PutU32(&end, cd_offset >= 0xffffffffull ? 0xffffffffu : static_cast<uint32_t>(cd_offset));
    PutU16(&end, 0);
    return Write(end);
  }

 private:
  struct Entry {
    std::string name;
    uint16_t flags = 0, method = 0;
    uint32_t crc = 0;
    uint64_t csize = 0, usize = 0, local_offset = 0;
  };

  static bool NeedsUtf8(const std::string& s) {
    for (char c : s) {
      if (static_cast<unsigned char>(c) >= 0x80) return true;
    }
    return false;
  }

  static std::string LocalHeader(const Entry& e, bool zip64) {
    std::string h;
    PutU32(&h, kLocalSig);
    PutU16(&h, zip64 ? 45 : 20);
    PutU16(&h, e.flags);
    PutU16(&h, e.method);
    PutU16(&h, 0);
    PutU16(&h, 0x0021);
    PutU32(&h, e.crc);
    PutU32(&h, zip64 ? 0xffffffffu : static_cast<uint32_t>(e.csize));
    PutU32(&h, zip64 ? 0xffffffffu : static_cast<uint32_t>(e.usize));
    PutU16(&h, static_cast<uint16_t>(e.name.size()));
    PutU16(&h, zip64 ? 20 : 0);
    h += e.name;
    if (zip64) {
      PutU16(&h, 0x0001);
      PutU16(&h, 16);
      PutU64(&h, e.usize);
      PutU64(&h, e.csize);
    }
    return h;
  }

  Status Write(const std::string& s) { return WriteRaw(s.data(), s.size()); }
  Status WriteRaw(const char* d, size_t n) {
    KILN_RETURN_IF_ERROR(WriteFully(fd_, d, n, path_));
    offset_ += n;
    return Status::OK();
  }

  int fd_;
  const std::string& path_;
  uint64_t offset_ = 0;
  std::vector<Entry> entries_;
};

}  // namespace

// ----------------------------------------------------------------------------- public API

StatusOr<Tensor> ParseNpy(std::string_view bytes, const std::string& what) {
  NpyHeader h;
  uint64_t need = 0;
  KILN_RETURN_IF_ERROR(ParseNpyHeader(bytes, bytes.size(), what, &h, &need));
  if (need != 0) return Internal(what + ": npy header parser asked for more of a complete buffer");
  KILN_ASSIGN_OR_RETURN(Tensor t, CreateForHeader(h, what));
  if (h.nbytes > 0) {
    std::memcpy(t.raw_mutable_data(), bytes.data() + h.data_offset, static_cast<size_t>(h.nbytes));
  }
  FinishNpyData(h, &t);
  return t;
}

StatusOr<Tensor> ReadNpyFile(const std::string& path) {
  int f;
  uint64_t size;
  KILN_RETURN_IF_ERROR(OpenForRead(path, &f, &size));
  Fd fd(f);
  // Read the header (growing the prefix as the parser asks), then the data straight into the
  // tensor, so a large file is not held in memory twice.
  std::string prefix(static_cast<size_t>(std::min<uint64_t>(size, 4096)), '\0');
  KILN_RETURN_IF_ERROR(PreadFully(fd.get(), prefix.data(), prefix.size(), 0, path));
  NpyHeader h;
  uint64_t need = 0;
  for (int round = 0; round < 3; ++round) {
    KILN_RETURN_IF_ERROR(ParseNpyHeader(prefix, size, path, &h, &need));
    if (need == 0) break;
    size_t have = prefix.size();
    prefix.resize(static_cast<size_t>(need));
    KILN_RETURN_IF_ERROR(
        PreadFully(fd.get(), prefix.data() + have, prefix.size() - have, have, path));
  }
  if (need != 0) return Internal(path + ": npy header parser did not converge");
  KILN_ASSIGN_OR_RETURN(Tensor t, CreateForHeader(h, path));
  if (h.nbytes > 0) {
    KILN_RETURN_IF_ERROR(PreadFully(fd.get(), static_cast<char*>(t.raw_mutable_data()),
                                    static_cast<size_t>(h.nbytes), h.data_offset, path));
  }
  FinishNpyData(h, &t);
  return t;
}

StatusOr<std::string> SerializeNpy(const Tensor& t) {
  KILN_RETURN_IF_ERROR(CheckWritable(t, "SerializeNpy(" + t.TypeString() + ")"));
  std::string out = NpyHeaderBytes(t);
  out.reserve(out.size() + t.nbytes());
  KILN_RETURN_IF_ERROR(EmitLittleEndianData(t, [&](const char* d, size_t n) {
    out.append(d, n);
    return Status::OK();
  }));
  return out;
}

Status WriteNpyFile(const std::string& path, const Tensor& t) {
  KILN_RETURN_IF_ERROR(CheckWritable(t, path));
  std::string header = NpyHeaderBytes(t);
  return WriteAtomically(path, [&](int fd) -> Status {
    KILN_RETURN_IF_ERROR(WriteFully(fd, header.data(), header.size(), path));
    return EmitLittleEndianData(
        t, [&](const char* d, size_t n) { return WriteFully(fd, d, n, path); });
  });
}

StatusOr<NamedTensors> ParseNpz(std::string_view bytes, const std::string& what) {
  std::vector<ZipEntry> entries;
  KILN_RETURN_IF_ERROR(ReadZipDirectory(bytes, what, &entries));
  NamedTensors result;
  std::set<std::string> seen;
  for (const ZipEntry& ent : entries) {
    const std::string where = what + ": member " + Quote(ent.name);
    KILN_RETURN_IF_ERROR(CheckMemberName(ent.name, what));
    constexpr std::string_view kSuffix = ".npy";
    if (ent.name.size() <= kSuffix.size() ||
        ent.name.compare(ent.name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      return InvalidArgument(where + " is not a .npy file");
    }
    std::string name = ent.name.substr(0, ent.name.size() - kSuffix.size());
    if (!seen.insert(name).second) return InvalidArgument(where + ": duplicate member");
    if (ent.usize > static_cast<uint64_t>(MaxTensorBytes()) + kMaxNpyHeaderLen + 64) {
      return ResourceExhausted(where + ": uncompressed size " + std::to_string(ent.usize) +
                               " exceeds the size cap (KILN_MAX_TENSOR_BYTES)");
    }
    std::string_view compressed =
        bytes.substr(static_cast<size_t>(ent.data_offset), static_cast<size_t>(ent.csize));
    std::string inflated;
    std::string_view data;
    if (ent.method == kMethodStored) {
      data = compressed;
    } else {
      KILN_RETURN_IF_ERROR(Inflate(compressed, ent.usize, where, &inflated));
      data = inflated;
    }
    uint32_t crc = Crc32(0, data.data(), data.size());
    if (crc != ent.crc) {
      return DataLoss(where + ": CRC-32 mismatch (stored " + std::to_string(ent.crc) +
                      ", computed " + std::to_string(crc) + ")");
    }
    KILN_ASSIGN_OR_RETURN(Tensor t, ParseNpy(data, what + ":" + ent.name));
    result.emplace_back(std::move(name), std::move(t));
  }
  return result;
}

StatusOr<NamedTensors> ReadNpzFile(const std::string& path) {
  KILN_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  return ParseNpz(bytes, path);
}

Status WriteNpzFile(const std::string& path, const NamedTensors& tensors, bool compress) {
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    KILN_RETURN_IF_ERROR(CheckMemberName(name, path));
    if (name.size() > 0xffff - 4) return InvalidArgument(path + ": member name too long");
    if (!seen.insert(name).second) {
      return InvalidArgument(path + ": duplicate tensor name " + Quote(name));
    }
    KILN_RETURN_IF_ERROR(CheckWritable(t, path + ": " + Quote(name)));
  }
  return WriteAtomically(path, [&](int fd) -> Status {
    ZipWriter zip(fd, path);
    for (const auto& [name, t] : tensors) KILN_RETURN_IF_ERROR(zip.AddNpy(name, t, compress));
    return zip.Finish();
  });
}

}  // namespace kiln
