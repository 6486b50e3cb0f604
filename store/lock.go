package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// runLock is the flock(2) on segments/<run-id>/LOCK held by a run's writer (FORMAT.md §7).
type runLock struct{ f *os.File }

// tryLockRun takes the run lock without waiting; ErrLocked if another open file holds it.
func tryLockRun(path string) (*runLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := flockNB(f); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: run is being recorded by another live writer (%s is locked)", ErrLocked, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &runLock{f: f}, nil
}

func flockNB(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			return err
		}
	}
}

func (l *runLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor drops the flock
	l.f = nil
	return err
}

// runLockFree reports whether nobody holds the run's lock (its writer is gone). A missing
// LOCK file counts as free.
func runLockFree(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return errors.Is(err, os.ErrNotExist)
	}
	defer f.Close()
	if err := flockNB(f); err != nil {
		return false
	}
	return true
}
