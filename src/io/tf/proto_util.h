// Small protobuf helpers shared by the TF importer and the SavedModel writer.
#pragma once

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/message.h>

#include <string>

namespace kiln {

// Serializes with deterministic map order (NodeDef.attr), so the same message always gives
// the same bytes: a NodeDef recorded at import and the same NodeDef re-imported from kiln's
// export compare equal, and written SavedModels are reproducible.
inline std::string SerializeDeterministic(const google::protobuf::Message& msg) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    msg.SerializeToCodedStream(&coded);
  }
  return out;
}

}  // namespace kiln
