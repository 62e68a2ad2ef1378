/* The floor of the benchmark: the least a per-connection program can do.
 * Built static, it answers "+" and exits without reading. */
#include <unistd.h>

int main(void)
{
	static const char reply[] = "+\r\n";

	return write(1, reply, sizeof reply - 1) == sizeof reply - 1 ? 0 : 1;
}
