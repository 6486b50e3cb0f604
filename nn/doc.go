// Package nn is a small float32 inference runtime with PyTorch semantics and
// PyTorch-style forward hooks: the models whose activations actrec records.
//
// A Model is a directed acyclic graph of leaf layers (Conv2d, ReLU, Linear...)
// assembled with a Builder. Every module has a dotted path like PyTorch's
// named_modules ("conv1", "block.conv2"); dotted prefixes are containers.
// Hooks registered on a path, or globally, see each module's inputs and
// output during Model.Forward.
package nn
