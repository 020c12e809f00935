package manager

import "go.uber.org/zap/zapcore"

// mostVerbose is the most verbose level the manager ever logs at. From V(6) on, client-go
// logs the bodies of requests and responses, and a Secret's body holds a token; no flag
// may turn that on.
const mostVerbose = zapcore.Level(-5)

type cappedLevel struct{ inner zapcore.LevelEnabler }

func (c cappedLevel) Enabled(l zapcore.Level) bool {
	return l >= mostVerbose && c.inner.Enabled(l)
}

// CapVerbosity wraps a log level so that it never enables V(6) or above.
func CapVerbosity(level zapcore.LevelEnabler) zapcore.LevelEnabler {
	if level == nil {
		level = zapcore.InfoLevel
	}
	return cappedLevel{inner: level}
}
