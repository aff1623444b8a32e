namespace ManagedClip.Search;

/// <summary>An index file is missing, not an index, damaged, of another version, or built with another model. The message names the file.</summary>
public sealed class IndexException : ClipException
{
    public IndexException(string message) : base(message) { }
    public IndexException(string message, Exception inner) : base(message, inner) { }
}
