#!/usr/bin/perl
# A test service: reports what it was started with, then echoes one line.
use strict;
use warnings;
use Socket qw(getnameinfo NI_NUMERICHOST NI_NUMERICSERV);
$| = 1;
my $peer = getpeername(STDIN);
my ($err, $host, $port) = $peer ? getnameinfo($peer, NI_NUMERICHOST | NI_NUMERICSERV) : ("", "none", "");
opendir(my $dir, "/proc/self/fd") or die "opendir: $!";
my $self = fileno($dir);
my @fds = sort { $a <=> $b } grep { /^\d+$/ && $_ != $self } readdir($dir);
print "uid=$< euid=$>\r\n";
print "gid=$( egid=$)\r\n";
print "peer=$host $port\r\n";
print "fds=@fds\r\n";
print "args=@ARGV\r\n";
# What else it finds at exec: its session, terminal, signals, directory.
my @stat = split / /, (split /\) /, `cat /proc/$$/stat`)[1];
print "session=", ($stat[3] == $$ ? "own" : "inherited"), "\r\n";
print "tty=", (open(my $tty, "<", "/dev/tty") ? "opens" : "$!"), "\r\n";
my %status = map { /^(\w+):\s*(.*)$/ ? ($1, $2) : () } `cat /proc/$$/status`;
# Perl ignores SIGFPE (bit 7) itself at start-up; what it was given is the rest.
my $ignored = sprintf "%016x", hex($status{SigIgn}) & ~0x80;
print "signals ignored=$ignored blocked=$status{SigBlk}\r\n";
print "umask=$status{Umask} cwd=", readlink("/proc/$$/cwd"), "\r\n";
print "fd2=", (getpeername(STDERR) ? "socket" : -t STDERR ? "tty" : "other"), "\r\n";
# The process that started it: may it look into its descriptors?
print "parent fds=", (opendir(my $up, "/proc/" . getppid() . "/fd") ? "open" : "$!"), "\r\n";
print "env $_=$ENV{$_}\r\n" for sort keys %ENV;
my $line = <STDIN>;
print "read=", defined $line ? $line : "EOF\r\n";
