namespace SlowFast;

/// <summary>
/// An error the user can fix: bad input, a wrong file, a malformed checkpoint. The command line
/// prints <see cref="Exception.Message"/> as one line and exits non-zero, without a stack trace.
/// Messages name the file (or request) and the problem.
/// </summary>
public class UserError : Exception
{
    public UserError(string message) : base(message) { }
    public UserError(string message, Exception inner) : base(message, inner) { }
}
