//go:build race

package congestion

const raceEnabled = true
