package xdp

import "github.com/flightline/flightline/ring"

func ringDesc(addr uint64, n int) ring.Desc { return ring.Desc{Addr: addr, Len: uint32(n)} }
