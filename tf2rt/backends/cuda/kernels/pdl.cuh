// Programmatic dependent launch (Hopper and later). A kernel launched with the
// programmatic-serialization attribute (launch.py) may start before the kernel ahead of it
// in the stream has finished: it can read what no kernel writes (weights) at once, and
// grid_dep_wait() holds it until the kernel ahead has finished and its writes are visible.
// So a kernel that may be launched this way reads its inputs and writes anything only after
// grid_dep_wait(). grid_dep_launch() lets the next such kernel start. Both do nothing
// where the kernel was launched the ordinary way, and on older GPUs.

__device__ __forceinline__ void grid_dep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void grid_dep_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
