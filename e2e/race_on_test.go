//go:build race

package e2e

// raceEnabled is true under -race, where the quick sizes apply: the race
// detector slows the data path ~5-10x and the package must stay under a
// minute there.
const raceEnabled = true
