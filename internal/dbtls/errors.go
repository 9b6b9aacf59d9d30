package dbtls

import "errors"

// Sentinel errors.
var (
	// ErrOptions: the settings contradict each other.
	ErrOptions = errors.New("tls settings")
	// ErrFiles: a certificate, key or CA file cannot be read or parsed.
	ErrFiles = errors.New("tls files")
)
