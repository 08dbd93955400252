#include "trace/trace-hw_pvsched.h"
