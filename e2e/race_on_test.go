//go:build race

package e2e

// raceEnabled is true under -race, where sized picks its smallest sizes.
const raceEnabled = true
