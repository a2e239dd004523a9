//go:build race

package flight

// raceEnabled forces Strict in -race builds: an accounting violation found
// while hunting races should stop the program, not scroll by in a log.
const raceEnabled = true
