package adaptive

// addrsOf returns the addresses of a policy's current view (tests).
func (s *PeakEWMA) addrsOf() []string                 { return s.views.cur.Load().addrs }
func (s *P2C) addrsOf() []string                      { return s.views.cur.Load().addrs }
func (s *Adaptive) addrsOf() []string                 { return s.views.cur.Load().addrs }
func (s *WeightedLeastConnections) addrsOf() []string { return s.views.cur.Load().addrs }
func (s *ConsistentHash) addrsOf() []string           { return s.views.cur.Load().addrs }
func (s *Maglev) addrsOf() []string                   { return s.views.cur.Load().addrs }
func (s *LocalityAware) addrsOf() []string            { return s.views.cur.Load().addrs }
func (s *DeterministicSubset) addrsOf() []string      { return s.views.cur.Load().addrs }
