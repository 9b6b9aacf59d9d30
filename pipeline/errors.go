package pipeline

import "errors"

// Sentinel errors of the pipeline package. Callers test them with errors.Is;
// the wrapped message names the object and the position.
var (
	// ErrMalformed marks a message that cannot be decoded. A sink stops on it
	// (fail closed) unless the operator skips that offset on purpose.
	ErrMalformed = errors.New("malformed message")
	// ErrUnsupported marks a value or statement rowcast cannot carry faithfully.
	ErrUnsupported = errors.New("unsupported")
)
