package query

import (
	"context"

	"github.com/actrec/actrec/store"
)

// tensors is store.Store.Tensors that stops once ctx is done: it checks
// ctx before each row and returns ctx.Err() (as is, for the caller to wrap).
func tensors(ctx context.Context, s *store.Store, run, layer string, r store.BatchRange, fn func(store.TensorRow) error) error {
	return s.Tensors(run, layer, r, func(row store.TensorRow) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fn(row)
	})
}
