namespace SlowFast.Extensions.AI.Tests;

public class StopSequenceFilterTests
{
    [Fact]
    public void Text_is_released_once_it_cannot_start_a_stop_sequence_and_cut_at_the_first_one()
    {
        var f = new StopSequenceFilter(["END", "XY"]); // holds back 2 characters
        Assert.Equal("a", f.Push("abc"));
        Assert.Equal("bc", f.Push("dE"));
        Assert.Equal("d", f.Push("N")); // "EN" may still become "END"
        Assert.Equal("ENo", f.Push("ope"));
        Assert.False(f.Stopped);
        Assert.Equal("pe", f.Flush());
        Assert.Equal("abcdENope", f.Answer);
    }

    [Fact]
    public void A_stop_sequence_split_over_pieces_is_found_and_nothing_after_it_is_released()
    {
        var f = new StopSequenceFilter(["END"]);
        var released = f.Push("Hello E") + f.Push("N") + f.Push("D and more") + f.Push("ignored") + f.Flush();
        Assert.True(f.Stopped);
        Assert.Equal("Hello ", released);
        Assert.Equal("Hello ", f.Answer);
        Assert.Equal("Hello END and more", f.Generated);
    }

    [Fact]
    public void Without_stop_sequences_every_piece_goes_straight_through()
    {
        var f = new StopSequenceFilter(null);
        Assert.Equal("ab", f.Push("ab"));
        Assert.Equal("c", f.Push("c"));
        Assert.Equal("", f.Flush());
        Assert.Equal("abc", f.Answer);
    }
}
