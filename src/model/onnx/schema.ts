/**
 * The part of ONNX's `onnx/onnx.proto` (ONNX project, IR version 10 / ONNX 1.16+) that mpq reads and
 * writes, as protobuf text that protobufjs parses when an .onnx file is first read (~2 ms). Message,
 * field and enum numbers are ONNX's, so files from any ONNX writer decode; fields left out here
 * (training_info, functions, quantization_annotation, metadata of nodes...) are skipped on read and
 * never written. Fields mpq only has to recognise to refuse (sequence/map types, sparse tensors,
 * subgraphs) are declared as `bytes`: the same wire format, without decoding what is inside.
 */
export const ONNX_PROTO = `
syntax = "proto2";
package onnx;

message ModelProto {
  optional int64 ir_version = 1;
  optional string producer_name = 2;
  optional string producer_version = 3;
  optional string domain = 4;
  optional int64 model_version = 5;
  optional string doc_string = 6;
  optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8;
  repeated StringStringEntryProto metadata_props = 14;
}

message OperatorSetIdProto {
  optional string domain = 1;
  optional int64 version = 2;
}

message StringStringEntryProto {
  optional string key = 1;
  optional string value = 2;
}

message GraphProto {
  repeated NodeProto node = 1;
  optional string name = 2;
  repeated TensorProto initializer = 5;
  optional string doc_string = 10;
  repeated ValueInfoProto input = 11;
  repeated ValueInfoProto output = 12;
  repeated ValueInfoProto value_info = 13;
  repeated bytes sparse_initializer = 15;
}

message NodeProto {
  repeated string input = 1;
  repeated string output = 2;
  optional string name = 3;
  optional string op_type = 4;
  repeated AttributeProto attribute = 5;
  optional string doc_string = 6;
  optional string domain = 7;
}

message AttributeProto {
  enum AttributeType {
    UNDEFINED = 0;
    FLOAT = 1;
    INT = 2;
    STRING = 3;
    TENSOR = 4;
    GRAPH = 5;
    FLOATS = 6;
    INTS = 7;
    STRINGS = 8;
    TENSORS = 9;
    GRAPHS = 10;
    SPARSE_TENSOR = 11;
    SPARSE_TENSORS = 12;
    TYPE_PROTO = 13;
    TYPE_PROTOS = 14;
  }
  optional string name = 1;
  optional float f = 2;
  optional int64 i = 3;
  optional bytes s = 4;
  optional TensorProto t = 5;
  optional bytes g = 6;
  repeated float floats = 7;
  repeated int64 ints = 8;
  repeated bytes strings = 9;
  repeated TensorProto tensors = 10;
  repeated bytes graphs = 11;
  optional string doc_string = 13;
  optional bytes tp = 14;
  repeated bytes type_protos = 15;
  optional AttributeType type = 20;
  optional string ref_attr_name = 21;
  optional bytes sparse_tensor = 22;
  repeated bytes sparse_tensors = 23;
}

message ValueInfoProto {
  optional string name = 1;
  optional TypeProto type = 2;
  optional string doc_string = 3;
}

message TypeProto {
  message Tensor {
    optional int32 elem_type = 1;
    optional TensorShapeProto shape = 2;
  }
  oneof value {
    Tensor tensor_type = 1;
    bytes sequence_type = 4;
    bytes map_type = 5;
    bytes opaque_type = 7;
    bytes sparse_tensor_type = 8;
    bytes optional_type = 9;
  }
  optional string denotation = 6;
}

message TensorShapeProto {
  message Dimension {
    oneof value {
      int64 dim_value = 1;
      string dim_param = 2;
    }
    optional string denotation = 3;
  }
  repeated Dimension dim = 1;
}

message TensorProto {
  enum DataLocation {
    DEFAULT = 0;
    EXTERNAL = 1;
  }
  repeated int64 dims = 1;
  optional int32 data_type = 2;
  optional bytes segment = 3;
  repeated float float_data = 4 [packed = true];
  repeated int32 int32_data = 5 [packed = true];
  repeated bytes string_data = 6;
  repeated int64 int64_data = 7 [packed = true];
  optional string name = 8;
  optional bytes raw_data = 9;
  repeated double double_data = 10 [packed = true];
  repeated uint64 uint64_data = 11 [packed = true];
  optional string doc_string = 12;
  repeated StringStringEntryProto external_data = 13;
  optional DataLocation data_location = 14;
}
`;
