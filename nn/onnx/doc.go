// Package onnx loads ONNX models (.onnx files, e.g. written by
// torch.onnx.export) into an nn.Model, so that every node of the graph is a
// hookable module: forward hooks, `actrec layers --model file.onnx` and the
// recorder's layer selection work on it as on a model built in Go.
//
//	m, err := onnx.Load("model.onnx") // *nn.Model
//	y, err := m.Forward(ctx, x)        // x: [N C H W] float32
//
// LoadWithOptions takes LoadOptions (model name, sizes for symbolic input
// dimensions, choice of graph output, dynamic batch for files exported with a
// fixed one); Decode builds a model from bytes.
//
// # Parsing
//
// The protobuf wire format is decoded directly with protowire (no generated
// code, no cgo) for the messages the loader needs: ModelProto, GraphProto,
// NodeProto, AttributeProto, TensorProto, ValueInfoProto. Every length,
// count, dimension and index read from a file is checked: a malformed file
// yields an error wrapping ErrNotONNX (or naming the bad initializer), never
// a panic. Tensors stored in external data files are read from the model's
// directory; a location that is absolute or escapes the directory (also
// through a symbolic link) is rejected. FLOAT, DOUBLE, FLOAT16 and BFLOAT16
// tensors become float32; integer and bool tensors are used for shapes,
// axes and indices.
//
// # Modules
//
// Every node whose output depends on the model's inputs becomes one leaf
// module (a Split node: one leaf per output), in graph (topological) order,
// so Model.Modules lists the graph's nodes as they run. Its path comes from the node name; the scope names
// PyTorch's exporter writes map back to the PyTorch module paths:
//
//	"/layer1/layer1.0/conv1/Conv"  -> "layer1.0.conv1"   (only node of its scope)
//	"/layer1/layer1.0/Add"         -> "layer1.0.Add"     (scope has sub-modules)
//	"/gelu/Div", "/gelu/Erf", ...  -> "gelu.Div", "gelu.Erf", ... (scope "gelu" is a container)
//	"/Flatten"                     -> "Flatten"
//
// Other names are sanitised (characters outside [A-Za-z0-9_-] become "_");
// an unnamed node uses its first output's name; duplicates get "_2", "_3"...
// A module's Op is the PyTorch class name where the node maps to an nn layer
// ("Conv2d", "Linear", "BatchNorm2d", "MaxPool2d", "ReLU"...), else the ONNX
// operator ("Gemm", "MatMul", "Reshape", "Clip", "Erf"...).
//
// Nodes whose inputs are all known at load time — Constant, nodes on
// initializers only, and the Shape -> Gather -> Unsqueeze -> Concat chains
// that exporters emit around Reshape (x.view(x.size(0), -1)) — are evaluated
// once at load time and are not modules. The batch size in such a chain stays
// symbolic: a Reshape target taken from Shape(x)[0] uses the actual batch
// size of each call.
//
// # Batch dimension
//
// Dimension 0 of each graph input is the batch: dynamic when the file gives
// it a symbolic name (export with dynamic_axes={"input": {0: "batch"}}),
// fixed otherwise (the model then only accepts that batch size, unless
// LoadOptions.DynamicBatch makes it dynamic anyway). Other
// symbolic dimensions need a size in LoadOptions.Dims. With a dynamic batch,
// every node output must keep the batch as its first dimension (the recorder
// stores per-sample activations); a node that mixes samples, e.g. a Reshape
// to [1, -1], fails to load rather than give a wrong answer.
//
// # Parameters
//
// Initializers used as weights become the modules' parameters, shared
// between modules that use the same initializer. StateDict keys are the
// module path plus the PyTorch parameter name ("weight", "bias",
// "running_mean", "running_var"; "A"/"B"/"C" for operands of Gemm, MatMul
// and element-wise operators), which equals the initializer name for
// PyTorch exports whose weights kept their names ("conv1.weight"). Exported
// convolutions with a folded BatchNorm get their module's path instead of the
// exporter's "onnx::Conv_123".
//
// # Operators
//
// Default domain, opsets MinOpset (11) to MaxOpset (21); tested with PyTorch
// exports at opsets 11, 13 and 17 (a CNN, an operator zoo, a transformer
// block, torchvision resnet18 and mobilenet_v2). SupportedOps lists them: Conv (2-D,
// symmetric or SAME padding), ConvTranspose (2-D, any pads, groups,
// output_padding), Gemm, MatMul, Add, Sub, Mul, Div, Pow, Relu,
// LeakyRelu, PRelu, Clip, Sigmoid, Tanh, HardSigmoid, HardSwish, Elu, Selu,
// Celu, Softplus, Softsign, Mish, Sin, Cos, Gelu, Erf (so the
// exported GELU pattern Div-Erf-Add-Mul-Mul), Sqrt, Exp, Log, Neg, Abs,
// Reciprocal, Floor, Ceil, MaxPool and AveragePool (2-D, symmetric padding),
// GlobalAveragePool, BatchNormalization (inference), Flatten, Reshape
// (allowzero), Transpose, Concat, Slice, Gather, Unsqueeze, Squeeze, Pad
// (constant mode), Expand, Resize (nearest and bilinear on NCHW, the
// coordinate modes PyTorch emits), ReduceMean, ReduceSum, ReduceMax, ReduceMin,
// GlobalMaxPool, LayerNormalization, InstanceNormalization, Split (one
// Slice leaf per output: "split.0", "split.1"...), Softmax and LogSoftmax (with the axis semantics of
// opsets before and since 13), Identity, Dropout (inference), Cast (to
// float), and at load time Constant, Shape, Size, ConstantOfShape, Equal
// and Where (on integers).
// Version differences handled: Clip min/max as attributes (before 11) or
// inputs, Dropout ratio as attribute (before 12) or input, Unsqueeze and
// Squeeze axes as attribute (before 13) or input, reduction axes as
// attribute or input (13 for ReduceSum, 18 for the others), Softmax's default
// axis and 2-D coercion (before 13), Shape start/end (15), Reshape allowzero
// (14).
//
// An operator, attribute or input form outside this set fails at load time
// with an *UnsupportedError that lists every problem with its node name;
// nothing unsupported is ever run.
//
// # Concurrency
//
// Load, LoadWithOptions and Decode may be called concurrently. The returned
// model is an ordinary nn.Model: safe for concurrent Forward calls.
//
// # Parity
//
// scripts/onnx_export.py writes the small fixtures in testdata/onnx (see its
// README), which the tests compare with PyTorch outputs, intermediate
// modules included. The torchvision resnet18 and mobilenet_v2 comparison
// (with --zoo also alexnet, squeezenet, googlenet, densenet121, shufflenet,
// mobilenet_v3, mnasnet, efficientnet_b0, regnet, convnext_tiny and the
// lraspp segmentation model) and BenchmarkResNet18 need the script's --large
// output:
//
//	/usr/bin/python3 scripts/onnx_export.py --large /tmp/onnx-large [--zoo]
//	ACTREC_ONNX_LARGE=/tmp/onnx-large go test ./nn/onnx -run Large -bench ResNet18
//
// Not supported: control flow (If, Loop, Scan), sequences, recurrent layers
// (LSTM, GRU, RNN), quantized operators, 1-D and 3-D convolutions and
// pooling, integer or boolean tensors at run time (ArgMax, TopK, masks), and
// models whose nodes move the batch out of dimension 0 — among them
// nn.MultiheadAttention's [L, N*heads, D] layout, so torchvision's
// vit_b_16 does not load.
package onnx
