pub struct ComputeState;
pub struct RunningCompute;
pub struct Supervisor;
pub struct SupervisorOptions;
