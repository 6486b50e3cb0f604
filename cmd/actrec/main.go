// Command actrec records activations of a model during inference into an actrec store.
package main

func main() {}
