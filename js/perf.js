// placeholder, replaced by the performance suite
export const STANDARD_PERFORMANCE_TESTS = [];
export class PerformanceTestSuite {}
