// Package onnx loads ONNX models (.onnx files, e.g. from torch.onnx.export) into
// nn.Model, so that every node of the graph is a hookable module.
//
// The protobuf wire format is decoded directly (no generated code, no cgo);
// every length, count and index read from a file is checked, and malformed
// files give an error, never a panic.
package onnx
