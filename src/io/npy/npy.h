// io/npy/npy.h — NumPy .npy and .npz reading and writing.
//
// .npy: format versions 1.0, 2.0 and 3.0; byte orders '<', '>', '|' (and '=' as native);
// C order, and Fortran order (transposed to C order on read); dtypes f2 f4 f8 i1 i2 i4 i8
// u1 u2 u4 u8 b1. bfloat16 has no numpy dtype: files holding ml_dtypes' bfloat16 ('<V2') are
// rejected, and bfloat16 tensors cannot be written (cast to float32 first). Strings, complex,
// structured and object arrays are Unimplemented.
//
// .npz: a zip archive of .npy members, stored (numpy.savez) or deflated
// (numpy.savez_compressed). Zip64 is read and written when needed. Each member's CRC-32 is
// checked. Member names are returned without their ".npy" suffix, in archive order.
//
// These functions parse files from strangers: every length and offset is checked, and malformed
// input gives InvalidArgument (DataLoss for truncation or checksum mismatch) naming the file,
// never a crash. Writers go through a temporary file (path + ".tmp.<pid>") that is renamed into
// place, so a reader never sees a half-written file.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kiln/status.h"
#include "kiln/tensor.h"

namespace kiln {

// Parses the bytes of a .npy file. `what` names the source in error messages.
StatusOr<Tensor> ParseNpy(std::string_view bytes, const std::string& what);
StatusOr<Tensor> ReadNpyFile(const std::string& path);

// Serializes as .npy version 1.0 (2.0 only if the header would not fit), little-endian,
// C order. Errors for undefined, string and bfloat16 tensors.
StatusOr<std::string> SerializeNpy(const Tensor& t);
Status WriteNpyFile(const std::string& path, const Tensor& t);

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

StatusOr<NamedTensors> ParseNpz(std::string_view bytes, const std::string& what);
StatusOr<NamedTensors> ReadNpzFile(const std::string& path);

// Names must be non-empty, unique, and not path-like ('/' at the start, '\\', '..' components);
// each is stored as name + ".npy".
Status WriteNpzFile(const std::string& path, const NamedTensors& tensors, bool compress = false);

}  // namespace kiln
