/* Monotonic time for the stage timings the pipeline reports. */
#ifndef VMED_BASE_CLOCK_H
#define VMED_BASE_CLOCK_H

/* Seconds since an arbitrary fixed point; only differences mean anything. */
double clock_seconds(void);

#endif
