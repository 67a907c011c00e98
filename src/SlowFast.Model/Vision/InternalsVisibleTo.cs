// The benchmarks profile the tower's internal batch entry point (ConvNextTower.EncodeFrames).
[assembly: System.Runtime.CompilerServices.InternalsVisibleTo("SlowFast.Benchmarks")]
