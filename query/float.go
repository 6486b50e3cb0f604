package query

import (
	"fmt"
	"math"
	"strconv"
)

// Float is a float64 that encodes to JSON as a number when finite and as
// the strings "+Inf", "-Inf" and "NaN" otherwise (JSON has no literal for
// them; an SQNR of two equal tensors is +Inf).
type Float float64

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = Float(math.NaN())
	case `"+Inf"`:
		*f = Float(math.Inf(1))
	case `"-Inf"`:
		*f = Float(math.Inf(-1))
	case "null":
	default:
		v, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return fmt.Errorf("query: bad JSON number %s", b)
		}
		*f = Float(v)
	}
	return nil
}

// String formats f for tables: %g with 6 significant digits, +Inf/-Inf/NaN.
func (f Float) String() string {
	v := float64(f)
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}
